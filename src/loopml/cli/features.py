"""``loopml features``: apply a Feast repo, materialize it incrementally, see how fresh it is.

Everything runs Feast's Python SDK in this process (the Feast CLI takes ~15 s to start).
Feast is the extra ``loopml[feast]``; without it these commands say how to install it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from loopml.cli.output import Format, FormatOpt, emit, say, show

if TYPE_CHECKING:
    from loopml.core.errors import LoopmlError

features_app = typer.Typer(
    help="The Feast feature store: apply, materialize (incremental), status.",
    no_args_is_help=True,
)

RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo",
        help="Feast repo folder (or its feature_store.yaml); default LOOPML_FEATURE_REPO or '.'.",
    ),
]


def _repo(repo: str | None, setting: str | None) -> str:
    return repo or setting or "."


def _hinted(error: LoopmlError, repo: str | None, setting: str | None) -> LoopmlError:
    """``error``, saying how to name the repo when the command fell back to '.'."""
    from loopml.core.errors import InputFileError

    if isinstance(error, InputFileError) and repo is None and setting is None:
        return InputFileError(f"{error}; name it with --repo or LOOPML_FEATURE_REPO")
    return error


@features_app.command("apply")
def features_apply(repo: RepoOpt = None) -> None:
    """Register the repo's entities, views and services in its Feast registry."""
    from loopml.cli.common import fail, out, settings
    from loopml.core.errors import LoopmlError
    from loopml.features import apply_repo
    from loopml.features.store import require_feast

    config = settings()
    try:
        require_feast()
        names = apply_repo(_repo(repo, config.feature_repo))
    except LoopmlError as error:
        fail(_hinted(error, repo, config.feature_repo))
    say(out, f"applied {len(names)} objects: {', '.join(names)}")


@features_app.command("materialize")
def features_materialize(repo: RepoOpt = None, format: FormatOpt = Format.table) -> None:
    """Load feature rows newer than the last run into the online store (incremental)."""
    from loopml.cli.common import fail, settings
    from loopml.core.errors import DataError, LoopmlError
    from loopml.features.materialize import materialize
    from loopml.features.store import require_feast

    config = settings()
    try:
        require_feast()
        materialize(config, repo)
    except LoopmlError as error:
        fail(_hinted(error, repo, config.feature_repo))
    except Exception as error:  # Feast's own errors: recorded in the run, shown plainly
        fail(DataError(f"materialization failed: {type(error).__name__}: {error}"))
    _status(repo, format)


@features_app.command("status")
def features_status(repo: RepoOpt = None, format: FormatOpt = Format.table) -> None:
    """The last materialization run and each view's freshness (stale views exit 1)."""
    _status(repo, format)


def _status(repo: str | None, format: Format) -> None:
    from rich.table import Table

    from loopml.cli.common import fail, out, settings
    from loopml.cli.shapes import FeatureStoreStatus
    from loopml.core.errors import LoopmlError
    from loopml.features.materialize import status
    from loopml.features.store import require_feast

    config = settings()
    try:
        require_feast()
        found = FeatureStoreStatus.model_validate(status(config, repo))
    except LoopmlError as error:
        fail(_hinted(error, repo, config.feature_repo))
    if format is Format.json:
        emit(found)
    else:
        last: dict[str, Any] | None = found.last_run
        say(out, f"repo {found.repo}")
        if last is None:
            say(out, "last materialization: never (through loopml)")
        else:
            line = f"last materialization: {last.get('status')} at {last.get('started_at')}"
            line += f" ({last.get('seconds')} s)"
            if last.get("error"):
                line += f": {last['error']}"
            say(out, line)
        table = Table(title=f"online views (stale after {found.stale_after_s:g} s)")
        for column in ("view", "materialized until", "age (s)", "stale"):
            table.add_column(column)
        for view in found.views:
            table.add_row(
                view.view,
                "never" if view.materialized_until is None else view.materialized_until.isoformat(),
                "" if view.age_s is None else f"{view.age_s:g}",
                "yes" if view.stale else "no",
            )
        show(out, table)
    if any(view.stale for view in found.views):
        raise typer.Exit(1)
