"""The trust tables: migration 0007_trust matches the models; a registration is recorded once
and never overwritten with other files' hash; the newest approval counts."""

from __future__ import annotations

import pytest

from loopml.core.errors import StoreError
from loopml.store.trust import TrustTable


def test_migration_0007_matches_the_table_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from loopml.store.tables import Base

    with TrustTable(database_url) as table, table.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = [d for d in diff if "registered_versions" in repr(d) or "version_approvals" in repr(d)]
    assert mine == []


def test_a_registration_is_recorded_once_and_never_overwritten(database_url: str) -> None:
    with TrustTable(database_url) as table:
        first = table.record_registration(
            model_name="m", version="1", sha256="a" * 64, registrar="alice", source="s"
        )
        again = table.record_registration(
            model_name="m", version="1", sha256="a" * 64, registrar="mallory", source="s"
        )
        assert again == first  # the same files again: the first record stands
        with pytest.raises(StoreError, match="already recorded as registered with other"):
            table.record_registration(
                model_name="m", version="1", sha256="b" * 64, registrar="mallory", source="x"
            )
        kept = table.registration("m", "1")
        assert kept is not None and kept.sha256 == "a" * 64 and kept.registrar == "alice"
        assert table.registration("m", "2") is None
        assert table.registration("other", "1") is None


def test_the_newest_approval_counts(database_url: str) -> None:
    with TrustTable(database_url) as table:
        assert table.approval("m", "1") is None
        table.approve(model_name="m", version="1", sha256="a" * 64, actor="a", reason="r1")
        table.approve(model_name="m", version="1", sha256="b" * 64, actor="b", reason="r2")
        table.approve(model_name="m", version="2", sha256="c" * 64, actor="c", reason="r3")
        newest = table.approval("m", "1")
        assert newest is not None and (newest.sha256, newest.actor) == ("b" * 64, "b")
        assert newest.approved_at.tzinfo is not None
