"""The alias log on SQLite and PostgreSQL: moves kept in order, 'what served at X' answered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from loopml.store.aliases import AliasLog


def test_moves_are_kept_in_order_and_answer_what_served_when(database_url: str) -> None:
    log = AliasLog(database_url)
    name = f"model_{uuid.uuid4().hex[:8]}"  # the PostgreSQL database lives for the session
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    try:
        log.record(
            model_name=name, alias="champion", from_version=None, to_version="1",
            actor="ana", reason="first", run_id="r1", moved_at=start,
        )  # fmt: skip
        log.record(
            model_name=name, alias="challenger", from_version=None, to_version="2",
            actor="ana", reason="registered", moved_at=start + timedelta(hours=1),
        )  # fmt: skip
        log.record(
            model_name=name, alias="champion", from_version="1", to_version="2",
            actor="bo", reason="better", moved_at=start + timedelta(days=1),
        )  # fmt: skip
        log.record(
            model_name=name, alias="champion", from_version="2", to_version=None,
            actor="bo", reason="withdrawn", moved_at=start + timedelta(days=2),
        )  # fmt: skip
        log.record(
            model_name="other", alias="champion", from_version=None, to_version="9",
            actor="x", reason="elsewhere", moved_at=start,
        )  # fmt: skip

        moves = log.moves(name)
        assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
            ("champion", None, "1"),
            ("challenger", None, "2"),
            ("champion", "1", "2"),
            ("champion", "2", None),
        ]
        assert moves[0].actor == "ana" and moves[0].run_id == "r1"
        assert moves[0].moved_at == start and moves[0].moved_at.tzinfo is not None
        assert len(log.moves(name, alias="champion")) == 3
        assert len(log.moves(name, until=start + timedelta(hours=2))) == 2

        assert log.version_at(name, "champion", start - timedelta(seconds=1)) is None
        assert log.version_at(name, "champion", start) == "1"
        assert log.version_at(name, "champion", start + timedelta(hours=23)) == "1"
        assert log.version_at(name, "champion", start + timedelta(days=1, seconds=1)) == "2"
        assert log.version_at(name, "champion", start + timedelta(days=3)) is None
    finally:
        log.close()


def test_migration_0004_matches_the_table_model(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from loopml.store.tables import Base

    log = AliasLog(database_url)  # connecting migrates to the newest revision
    try:
        with log.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        log.close()
    mine = [d for d in diff if "alias_moves" in repr(d)]
    assert mine == []
