"""Audited alias moves: each goes to MLflow and into the alias log, with who, when and why."""

from __future__ import annotations

import getpass
from datetime import datetime

from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.registry import models as registry
from loopml.registry.models import APPROVAL_TAG, CHALLENGER, CHAMPION, PREVIOUS, AliasMove
from loopml.store.aliases import AliasLog, AliasMoveView

ROLLBACK = "rollback: "
"""How the reason of a rollback's moves starts; rollbacks do not count as promotions."""
REJECTED = "rejected"
"""The alias-log marker of a rejection when ``challenger`` no longer points at the version."""


def current_actor(actor: str | None = None) -> str:
    """Who is moving an alias: the given name, else the operating-system user."""
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an anonymous container user
        return "unknown"


def move_alias(
    settings: Settings,
    name: str,
    alias: str,
    version: str | None,
    *,
    reason: str,
    actor: str | None = None,
    run_id: str | None = None,
) -> AliasMove:
    """Point ``name@alias`` at ``version`` (``None`` removes it) and record the move."""
    log = AliasLog(settings.database)

    def record(move: AliasMove) -> None:
        log.record(
            model_name=move.name,
            alias=move.alias,
            from_version=move.from_version,
            to_version=move.to_version,
            actor=move.actor,
            reason=move.reason,
            run_id=move.run_id,
        )

    try:
        return registry.move_alias(
            settings,
            name,
            alias,
            version,
            audit=record,
            actor=current_actor(actor),
            reason=reason,
            run_id=run_id,
        )
    finally:
        log.close()


def promote(
    settings: Settings,
    name: str,
    version: str,
    *,
    reason: str,
    actor: str | None = None,
    run_id: str | None = None,
) -> list[AliasMove]:
    """Make ``version`` champion; the champion it replaces stays reachable as ``previous``."""
    registry.get_version(settings, name, version)  # a clear error for a version that is not there
    current = registry.version_for_alias(settings, name, CHAMPION)
    if current == version:
        raise LoopmlError(f"version {version} of {name!r} is already champion; nothing to do")
    moves = []
    if current is not None:
        moves.append(
            move_alias(
                settings,
                name,
                PREVIOUS,
                current,
                reason=f"replaced as champion by version {version}: {reason}",
                actor=actor,
                run_id=run_id,
            )
        )
    moves.append(
        move_alias(settings, name, CHAMPION, version, reason=reason, actor=actor, run_id=run_id)
    )
    return moves


def rollback(
    settings: Settings, name: str, *, reason: str, actor: str | None = None
) -> list[AliasMove]:
    """Put the previous champion back; ``previous`` then points one champion further back.

    Where ``previous`` goes is read from the alias log: the champion that the
    restored version itself replaced. Rolling back repeatedly walks back in
    time; with nothing further back, ``previous`` is removed.
    """
    restored = registry.version_for_alias(settings, name, PREVIOUS)
    if restored is None:
        raise LoopmlError(
            f"model {name!r} has no previous champion to roll back to; "
            f"`loopml models history {name}` shows its moves, "
            f"`loopml models promote {name} VERSION` picks one"
        )
    current = registry.version_for_alias(settings, name, CHAMPION)
    before = _champion_before(settings, name, restored)
    if before in (current, restored):
        before = None
    why = f"{ROLLBACK}{reason}"
    moves = [move_alias(settings, name, CHAMPION, restored, reason=why, actor=actor)]
    moves.append(move_alias(settings, name, PREVIOUS, before, reason=why, actor=actor))
    return moves


def approve(
    settings: Settings, name: str, version: str, *, reason: str, actor: str | None = None
) -> list[AliasMove]:
    """Promote a challenger the gate left waiting for a person (``require_approval``)."""
    found = registry.get_version(settings, name, version)
    state = found.tags.get(APPROVAL_TAG)
    if state != "pending":
        raise LoopmlError(
            f"version {version} of {name!r} is not waiting for approval "
            f"({APPROVAL_TAG}={state or 'unset'}); `loopml models promote {name} {version}` "
            "promotes it regardless"
        )
    moves = promote(settings, name, version, reason=f"approved: {reason}", actor=actor)
    registry.set_version_tag(settings, name, version, APPROVAL_TAG, "approved")
    return moves


def reject(
    settings: Settings, name: str, version: str, *, reason: str, actor: str | None = None
) -> AliasMove:
    """Turn down a challenger the gate left waiting for approval; the decision is on record.

    The version is tagged ``loopml.approval=rejected`` and loses ``challenger``
    (an audited move whose reason starts ``rejected:``). When ``challenger``
    already points at a newer version, the rejection is still written to the
    alias log, as a move of the ``rejected`` marker to this version, so every
    decision about a waiting version has its who, when and why.
    """
    found = registry.get_version(settings, name, version)
    state = found.tags.get(APPROVAL_TAG)
    if state != "pending":
        raise LoopmlError(
            f"version {version} of {name!r} is not waiting for approval "
            f"({APPROVAL_TAG}={state or 'unset'}); only a pending challenger can be rejected"
        )
    why = f"rejected: {reason}"
    registry.set_version_tag(settings, name, version, APPROVAL_TAG, "rejected")
    if registry.version_for_alias(settings, name, CHALLENGER) == version:
        return move_alias(settings, name, CHALLENGER, None, reason=why, actor=actor)
    move = AliasMove(name, REJECTED, None, version, current_actor(actor), why)
    log = AliasLog(settings.database)
    try:
        log.record(
            model_name=name,
            alias=REJECTED,
            from_version=None,
            to_version=version,
            actor=move.actor,
            reason=why,
            run_id=None,
        )
    finally:
        log.close()
    return move


def history(
    settings: Settings, name: str, *, alias: str | None = None, until: datetime | None = None
) -> list[AliasMoveView]:
    """Every recorded alias move of ``name``, oldest first."""
    log = AliasLog(settings.database)
    try:
        return log.moves(name, alias=alias, until=until)
    finally:
        log.close()


def served_at(settings: Settings, name: str, at: datetime, alias: str = CHAMPION) -> str | None:
    """The version ``name@alias`` pointed at, at moment ``at``, according to the alias log."""
    log = AliasLog(settings.database)
    try:
        return log.version_at(name, alias, at)
    finally:
        log.close()


def _champion_before(settings: Settings, name: str, version: str) -> str | None:
    """The champion that ``version`` replaced the last time it was promoted (not rolled back to)."""
    moves = history(settings, name, alias=CHAMPION)
    for move in reversed(moves):
        if move.to_version == version and not move.reason.startswith(ROLLBACK):
            return move.from_version
    return None
