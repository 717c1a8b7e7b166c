"""The metadata store on SQLite and PostgreSQL: migrations, runs, attempts, lookups."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from loopml.core.errors import RunNotFoundError, StoreError
from loopml.store import RunStore, connect
from loopml.store.runs import Provenance

WHO = Provenance("local", "host-a", "ada", "0.1.0", "a" * 40)


def _run(store: RunStore, run_id: str | None = None) -> str:
    return store.create_run(
        spec_text="{}",
        spec_hash="f" * 64,
        spec_source="/specs/x.json",
        experiment_name="e",
        model_name="m",
        provenance=WHO,
        run_id=run_id,
    )


def test_migrations_are_applied_once_and_are_idempotent(database_url: str) -> None:
    engine = connect(database_url)
    connect(database_url)  # second open: nothing to do, no error
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    from loopml.store.tables import Base

    assert {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"} <= tables
    assert version == _migration_head()
    engine.dispose()


def test_attempts_are_kept_per_step(database_url: str) -> None:
    store = RunStore(database_url)
    run_id = _run(store)
    first = store.start_step(run_id, 0, "load", {"path": "x"}, "host-a")
    store.finish_step(first, "failed", error="boom")
    second = store.start_step(run_id, 0, "load", {"path": "x"}, "host-b")
    store.finish_step(second, "succeeded", outputs={"data/train": "file:///a"})
    store.update_run(run_id, data_fingerprint="d" * 64, values={"rows": 3})
    store.finish_run(run_id, "succeeded")
    run = store.get_run(run_id)
    assert [(s.attempt, s.status, s.host) for s in run.steps] == [
        (1, "failed", "host-a"),
        (2, "succeeded", "host-b"),
    ]
    assert run.latest_steps()[0].outputs == {"data/train": "file:///a"}
    assert run.git_commit == "a" * 40 and run.values == {"rows": 3}
    assert run.started_at is not None and run.started_at.tzinfo is not None
    assert run.duration_s is not None and run.duration_s >= 0
    store.close()


def test_lookup_by_prefix_and_clear_misses(database_url: str) -> None:
    store = RunStore(database_url)
    _run(store, "abcdef0000000000000000000000000a")
    _run(store, "abcdef0000000000000000000000000b")
    assert store.get_run("abcdef0000000000000000000000000a").id.endswith("a")
    with pytest.raises(RunNotFoundError, match="matches several"):
        store.get_run("abcdef")
    with pytest.raises(RunNotFoundError, match="runs list"):
        store.get_run("zzzzzzzz")
    assert [r.id[-1] for r in store.list_runs(limit=5)] in (["b", "a"], ["a", "b"])
    assert store.list_runs(status="failed") == []
    store.close()


def test_an_unreachable_database_is_a_clear_store_error() -> None:
    with pytest.raises(StoreError, match="cannot reach the metadata store"):
        connect("postgresql://nobody@127.0.0.1:1/none")


def _migration_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from loopml.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()
