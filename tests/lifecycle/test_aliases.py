"""Audited alias moves on a real MLflow registry and a real metadata store (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.lifecycle import approve, history, promote, rollback, served_at
from loopml.registry.models import (
    APPROVAL_TAG,
    CHAMPION,
    PREVIOUS,
    register_version,
    set_version_tag,
    version_for_alias,
)

SRC = Path(__file__).parents[2] / "src" / "loopml"


def _register(settings: Settings, name: str, count: int) -> list[str]:
    """``count`` real versions of a tiny fitted model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from loopml.registry.tracking import ensure_experiment, use_tracking

    mlflow = use_tracking(settings)
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    versions = []
    with mlflow.start_run(experiment_id=ensure_experiment(settings, "lifecycle-tests")):
        for i in range(count):
            model = LogisticRegression(C=1.0 + i).fit(X, [0, 0, 1, 1])
            info = mlflow.sklearn.log_model(
                model, name=f"m{i}", serialization_format="cloudpickle", pip_requirements=[]
            )
            versions.append(register_version(settings, info.model_uri, name, {}).version)
    return versions


def test_promote_rollback_and_history(settings: Settings, request: pytest.FixtureRequest) -> None:
    name = f"lifecycle_{request.node.callspec.id}"
    v1, v2, v3 = _register(settings, name, 3)

    promote(settings, name, v1, reason="first", actor="ana")
    promote(settings, name, v2, reason="better", actor="bo")
    middle = datetime.now(UTC)
    promote(settings, name, v3, reason="best", actor="bo")
    assert version_for_alias(settings, name, CHAMPION) == v3
    assert version_for_alias(settings, name, PREVIOUS) == v2
    with pytest.raises(LoopmlError, match="already champion"):
        promote(settings, name, v3, reason="again")
    with pytest.raises(LoopmlError, match=r"there is no version 99; its versions: 3 \(champion\)"):
        promote(settings, name, "99", reason="nope")

    rollback(settings, name, reason="v3 misbehaves", actor="cy")
    assert version_for_alias(settings, name, CHAMPION) == v2
    assert version_for_alias(settings, name, PREVIOUS) == v1
    rollback(settings, name, reason="v2 too")
    assert version_for_alias(settings, name, CHAMPION) == v1
    assert version_for_alias(settings, name, PREVIOUS) is None
    with pytest.raises(LoopmlError, match="no previous champion"):
        rollback(settings, name, reason="nothing left")

    moves = history(settings, name)
    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        (CHAMPION, None, v1),
        (PREVIOUS, None, v1),
        (CHAMPION, v1, v2),
        (PREVIOUS, v1, v2),
        (CHAMPION, v2, v3),
        (CHAMPION, v3, v2),
        (PREVIOUS, v2, v1),
        (CHAMPION, v2, v1),
        (PREVIOUS, v1, None),
    ]
    assert moves[0].actor == "ana" and moves[5].actor == "cy"
    assert moves[5].reason == "rollback: v3 misbehaves"
    assert served_at(settings, name, middle) == v2
    assert served_at(settings, name, datetime.now(UTC)) == v1


def test_approve_promotes_only_a_waiting_challenger(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    name = f"lifecycle_approval_{request.node.callspec.id}"
    v1, v2 = _register(settings, name, 2)
    promote(settings, name, v1, reason="first")
    with pytest.raises(LoopmlError, match="not waiting for approval"):
        approve(settings, name, v2, reason="looks good")
    set_version_tag(settings, name, v2, APPROVAL_TAG, "pending")
    approve(settings, name, v2, reason="looks good", actor="dee")
    assert version_for_alias(settings, name, CHAMPION) == v2
    assert version_for_alias(settings, name, PREVIOUS) == v1
    last = history(settings, name)[-1]
    assert (last.actor, last.reason) == ("dee", "approved: looks good")
    from loopml.registry.models import get_version

    assert get_version(settings, name, v2).tags[APPROVAL_TAG] == "approved"


def test_every_alias_move_in_loopml_goes_through_move_alias() -> None:
    """Only registry.models.move_alias may call set_alias; nothing else touches MLflow aliases."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        relative = path.relative_to(SRC).as_posix()
        if "set_registered_model_alias" in text and relative != "registry/models.py":
            offenders.append(relative)
        calls = re.findall(r"\bset_alias\(", text)
        allowed = 2 if relative == "registry/models.py" else 0  # its definition and one call
        if len(calls) > allowed:
            offenders.append(relative)
    assert offenders == []


def _refuse_logging(url: str, alias: str, *, on: bool) -> None:
    """A real store that refuses to log moves of ``alias`` (a trigger), or accepts them again."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        if not on:
            connection.execute(
                sa.text(
                    "DROP TRIGGER IF EXISTS refuse_alias_moves ON alias_moves"
                    if postgres
                    else "DROP TRIGGER IF EXISTS refuse_alias_moves"
                )
            )
        elif postgres:
            connection.execute(
                sa.text(
                    "CREATE OR REPLACE FUNCTION refuse_alias_moves() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'the alias log is read-only'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_alias_moves BEFORE INSERT ON alias_moves FOR EACH ROW "
                    f"WHEN (NEW.alias = '{alias}') EXECUTE FUNCTION refuse_alias_moves()"
                )
            )
        else:
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_alias_moves BEFORE INSERT ON alias_moves "
                    f"WHEN NEW.alias = '{alias}' "
                    "BEGIN SELECT RAISE(ABORT, 'the alias log is read-only'); END"
                )
            )
    engine.dispose()


def test_a_move_the_alias_log_cannot_record_is_undone(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    # before: MLflow moved the alias, then writing the alias log failed and the move
    # stayed, on record nowhere: `champion` served a version no audit could account for
    from loopml.core.errors import StoreError

    name = f"unrecorded_{request.node.callspec.id}"
    v1, v2 = _register(settings, name, 2)
    promote(settings, name, v1, reason="first")
    _refuse_logging(settings.database, CHAMPION, on=True)
    try:
        with pytest.raises(StoreError, match=r"stays at 1: the alias log could not record"):
            promote(settings, name, v2, reason="second")
    finally:
        _refuse_logging(settings.database, CHAMPION, on=False)
    assert version_for_alias(settings, name, CHAMPION) == v1
    # every alias points where its last logged move says (`previous` moved, and is on record)
    for alias in (CHAMPION, PREVIOUS):
        logged = [m.to_version for m in history(settings, name) if m.alias == alias]
        assert version_for_alias(settings, name, alias) == logged[-1]


def test_an_unreachable_registry_is_an_error_not_an_unset_alias(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: every registry error read as "alias unset", so a rollback while the tracking
    # server was down said "no previous champion to roll back to"
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: connections are refused
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = settings.model_copy(update={"tracking_uri": f"http://127.0.0.1:{port}"})
    with pytest.raises(LoopmlError, match="cannot read fraud@previous from the registry") as info:
        rollback(down, "fraud", reason="the champion misbehaves")
    assert "no previous champion" not in str(info.value)
