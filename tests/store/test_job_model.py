"""Jobs record the registered model as (name, version); migration 0006_job_model reads old rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from loopml.core.status import FINISHED, Status
from loopml.store.db import MIGRATIONS, _with_driver, connect
from loopml.store.jobs import TRAINING, JobStore
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, fresh_postgres_database, require_service


def _upgrade(url: str, revision: str) -> None:
    engine = sa.create_engine(_with_driver(url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet, so the migrations run from the start."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    with fresh_postgres_database("job_model") as url:
        yield url


def test_old_display_sentences_become_name_and_version(empty_database: str) -> None:
    database_url = empty_database
    _upgrade(database_url, "0005")
    engine = sa.create_engine(_with_driver(database_url))
    jobs = sa.table(
        "jobs",
        *(sa.column(name) for name in ("id", "kind", "status", "queue", "submitted_at")),
        *(sa.column(name) for name in ("attempts", "steps_done", "cancel_requested")),
        sa.column("details", sa.JSON),
        sa.column("registered_model"),
    )
    rows = [
        ("a" * 32, "fraud model version 12 (aliases: challenger, champion)"),
        ("b" * 32, None),
        ("c" * 32, "not a sentence we wrote"),
    ]
    with engine.begin() as connection:
        for job_id, sentence in rows:
            connection.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=TRAINING,
                    status="succeeded",
                    queue="q",
                    submitted_at=sa.func.now(),
                    attempts=1,
                    steps_done=0,
                    cancel_requested=False,
                    details={},
                    registered_model=sentence,
                )
            )
    engine.dispose()

    store = JobStore(connect(database_url))  # migrates to the newest revision
    try:
        got = {job_id: store.get(job_id) for job_id, _ in rows}
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("jobs")}
    finally:
        store.close()
    assert (got["a" * 32].registered_name, got["a" * 32].registered_version) == (
        "fraud model",
        "12",
    )
    assert got["b" * 32].registered_name is None and got["c" * 32].registered_name is None
    assert "registered_model" not in columns  # no display sentence left in the table


def test_a_finished_job_keeps_the_pair_and_the_api_shape(database_url: str) -> None:
    store = JobStore(database_url)
    try:
        store.create("d" * 32, kind=TRAINING, queue="q")
        assert store.start_attempt("d" * 32, "w").status == Status.QUEUED
        store.finish("d" * 32, Status.SUCCEEDED, registered=("fraud", "4"))
        store.finish("d" * 32, Status.FAILED, error="late duplicate")  # first ending stays
        job = store.get("dddddd")  # a unique prefix names it
    finally:
        store.close()
    assert job.status == Status.SUCCEEDED and job.status in FINISHED and job.finished
    assert (job.registered_name, job.registered_version) == ("fraud", "4")
    assert job.as_dict()["registered_model"] == {"name": "fraud", "version": "4"}
