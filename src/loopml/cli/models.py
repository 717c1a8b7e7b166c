"""``loopml models``: see a registered model's versions and aliases, and move them, on record.

Every move (promote, rollback, approve, reject) goes through ``loopml.lifecycle``,
which writes it to the alias log with who, when and why; ``history`` reads
that log back, and ``history --at`` answers "what served at that moment".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.output import Format, FormatOpt, emit, say, show

if TYPE_CHECKING:
    from loopml.cli.shapes import ModelVersion
    from loopml.registry.models import AliasMove, RegisteredVersion

models_app = typer.Typer(
    help=(
        "Registered models: versions, champion/challenger aliases, promote, rollback, history, "
        "trust."
    ),
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Registered model name.", show_default=False)]
VersionArg = Annotated[str, typer.Argument(help="Model version number.", show_default=False)]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the alias log.")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who; default the operating-system user.")
]


@models_app.command("list")
def models_list(
    name: Annotated[
        str | None, typer.Argument(help="A model name to list its versions.", show_default=False)
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Every registered model with its aliases, or every version of one model."""
    from rich.table import Table

    from loopml.cli.common import err, fail, out, settings, where
    from loopml.cli.shapes import ModelSummary
    from loopml.core.errors import LoopmlError, ModelNotFoundError
    from loopml.registry.models import list_models, list_versions

    config = settings()
    known = ("champion", "challenger", "previous")
    try:
        if name is None:
            models = list_models(config)
            rows = [
                ModelSummary(
                    model=model,
                    champion=aliases.get("champion"),
                    challenger=aliases.get("challenger"),
                    previous=aliases.get("previous"),
                    aliases=aliases,
                )
                for model, aliases in sorted(models.items())
            ]
            if format is Format.json:
                emit(rows)
            if not rows:
                say(
                    err if format is Format.json else out,
                    f"no registered models in {where(config)}",
                )
            if format is Format.json or not rows:
                return
            table = Table(title="registered models")
            for column in ("model", "champion", "challenger", "previous", "other aliases"):
                table.add_column(column)
            for row in rows:
                others = ", ".join(f"{k}={v}" for k, v in row.aliases.items() if k not in known)
                table.add_row(row.model, *(row.aliases.get(k, "-") for k in known), others or "-")
            show(out, table)
            return
        versions = list_versions(config, name)
    except LoopmlError as error:
        fail(error)
    if not versions:
        fail(
            ModelNotFoundError(
                f"no registered model named {name!r} in {where(config)}; "
                "`loopml models list` shows them"
            )
        )
    shaped = [_version(version) for version in versions]
    if format is Format.json:
        emit(shaped)
        return
    table = Table(title=f"{name} versions")
    for column in ("version", "aliases", "registered", "metric", "gate", "approval", "run"):
        table.add_column(column)
    for entry in shaped:
        table.add_row(
            entry.version,
            ", ".join(entry.aliases) or "-",
            entry.registered_at.strftime("%Y-%m-%d %H:%M:%S") if entry.registered_at else "-",
            f"{entry.main_metric} {entry.main_metric_value:.4f}"
            if entry.main_metric and entry.main_metric_value is not None
            else "-",
            entry.gate or "-",
            entry.approval or "-",
            entry.run_id or "-",
        )
    show(out, table)


def _version(version: RegisteredVersion) -> ModelVersion:
    from loopml.cli.shapes import ModelVersion

    tags = version.tags
    value = tags.get("loopml.main_metric_value") or None
    try:
        number = None if value is None else float(value)
    except ValueError:
        number = None
    return ModelVersion(
        model=version.name,
        version=version.version,
        aliases=list(version.aliases),
        registered_at=datetime.fromtimestamp(version.created_at_ms / 1000, UTC)
        if version.created_at_ms
        else None,
        main_metric=tags.get("loopml.main_metric") or None,
        main_metric_value=number,
        gate=tags.get("loopml.gate"),
        approval=tags.get("loopml.approval"),
        run_id=tags.get("loopml.run_id"),
    )


@models_app.command("promote")
def models_promote(
    name: NameArg,
    version: VersionArg,
    reason: ReasonOpt = "promoted by hand",
    actor: ActorOpt = None,
) -> None:
    """Make VERSION champion now; the champion it replaces becomes `previous`."""
    from loopml.cli.common import fail, settings
    from loopml.core.errors import LoopmlError
    from loopml.lifecycle import promote

    try:
        moves = promote(settings(), name, version, reason=reason, actor=actor)
    except LoopmlError as error:
        fail(error)
    _print_moves(moves)


@models_app.command("rollback")
def models_rollback(
    name: NameArg,
    reason: ReasonOpt = "rolled back by hand",
    actor: ActorOpt = None,
) -> None:
    """Put the previous champion back in one step (recorded)."""
    from loopml.cli.common import fail, settings
    from loopml.core.errors import LoopmlError
    from loopml.lifecycle import rollback

    try:
        moves = rollback(settings(), name, reason=reason, actor=actor)
    except LoopmlError as error:
        fail(error)
    _print_moves(moves)


@models_app.command("approve")
def models_approve(
    name: NameArg,
    version: VersionArg,
    reason: ReasonOpt = "approved by hand",
    actor: ActorOpt = None,
) -> None:
    """Promote a challenger the gate left waiting for approval (require_approval: true)."""
    from loopml.cli.common import fail, settings
    from loopml.core.errors import LoopmlError
    from loopml.lifecycle import approve

    try:
        moves = approve(settings(), name, version, reason=reason, actor=actor)
    except LoopmlError as error:
        fail(error)
    _print_moves(moves)


@models_app.command("reject")
def models_reject(
    name: NameArg,
    version: VersionArg,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the alias log.")],
    actor: ActorOpt = None,
) -> None:
    """Turn down a challenger waiting for approval: it loses `challenger`, on record."""
    from loopml.cli.common import fail, settings
    from loopml.core.errors import LoopmlError
    from loopml.lifecycle import reject

    try:
        move = reject(settings(), name, version, reason=reason, actor=actor)
    except LoopmlError as error:
        fail(error)
    _print_moves([move])


@models_app.command("trust")
def models_trust(
    name: NameArg,
    version: VersionArg,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why these files can be trusted; recorded.")
    ] = "trusted by hand",
    actor: ActorOpt = None,
) -> None:
    """Trust a version's files as they are now (registered outside loopml, or changed since).

    Hashes the version's artifacts and records the hash with who, when and why in the
    metadata store; servers and workers then load it while its files keep that hash.
    Check the files first: loading a model runs code from them (docs/security.md).
    """
    from loopml.cli.common import fail, out, settings
    from loopml.core.errors import LoopmlError
    from loopml.lifecycle import approve_files

    try:
        approval = approve_files(settings(), name, version, reason=reason, actor=actor)
    except LoopmlError as error:
        fail(error)
    out.print(
        f"trusted {name} version {version} (sha256 {approval.sha256}) by {approval.actor} "
        f"at {approval.approved_at.isoformat()}"
    )


@models_app.command("history")
def models_history(
    name: NameArg,
    at: Annotated[
        str | None,
        typer.Option(
            help="Show what served at this moment (ISO 8601, e.g. 2026-11-25T09:30; "
            "no time zone means UTC) and the moves up to it."
        ),
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Only moves of this alias.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Every recorded alias move of NAME: when, which alias, from and to which version, who, why."""
    from rich.table import Table

    from loopml.cli.common import fail, out, settings, where
    from loopml.cli.shapes import AliasMoveRow, ModelHistory
    from loopml.core.errors import ConfigError, LoopmlError
    from loopml.lifecycle import history, served_at
    from loopml.registry.models import CHAMPION

    moment = None
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            fail(ConfigError(f"--at {at!r} is not a date-time; write e.g. 2026-11-25T09:30:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    config = settings()
    try:
        moves = history(config, name, alias=alias, until=moment)
        serving = served_at(config, name, moment, alias or CHAMPION) if moment else None
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit(
            ModelHistory(
                model=name,
                alias=alias,
                at=moment,
                served_version=serving,
                moves=[AliasMoveRow.model_validate(move) for move in moves],
            )
        )
        return
    if moment is not None:
        what = f"version {serving}" if serving else "no version"
        say(out, f"{name}@{alias or CHAMPION} at {moment.isoformat()}: [bold]{what}[/]")
    if not moves:
        say(out, f"no alias moves recorded for {name!r} in {where(config)}")
        return
    table = Table(title=f"{name} alias moves")
    for column in ("when (UTC)", "alias", "from", "to", "who", "why", "run"):
        table.add_column(column)
    for move in moves:
        table.add_row(
            move.moved_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            move.alias,
            move.from_version or "-",
            move.to_version or "(removed)",
            move.actor,
            move.reason,
            move.run_id or "-",
        )
    show(out, table)


def _print_moves(moves: list[AliasMove]) -> None:
    from loopml.cli.common import out

    for move in moves:
        say(
            out,
            f"{move.name}@{move.alias}: {move.from_version or '-'} -> "
            f"{move.to_version or '(removed)'}  ({move.reason})",
        )
