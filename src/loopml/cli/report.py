"""What `loopml run` prints when a run ends: the comparison grid, the registered version."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from loopml.cli.output import Format, emit, say, show
from loopml.cli.render import frame_table, run_details
from loopml.cli.shapes import RegisteredRef, RunDetail, RunResult
from loopml.core.context import StepContext
from loopml.engine import PipelineResult


def print_result(console: Console, result: PipelineResult, format: Format = Format.table) -> None:
    """Reports the steps left (tables as grids), then the run's record."""
    context = result.context
    import pandas as pd

    registered = context.registered
    grids = {
        name: report for name, report in context.reports.items() if isinstance(report, pd.DataFrame)
    }
    if format is Format.json:
        emit(
            RunResult(
                run=RunDetail.of(result.run),
                registered_model=None
                if registered is None
                else RegisteredRef(name=registered.name, version=registered.version),
                reports={name: _records(grid) for name, grid in grids.items()},
            )
        )
        return
    for name, report in grids.items():
        show(console, frame_table(report, name, highlight=context.experiment.main_metric))
    if registered is not None:
        say(
            console,
            f"[bold green]registered[/] {registered.name} version {registered.version}"
            + _aliases(context, registered.name, registered.version),
        )
    show(console, run_details(result.run))


def _aliases(context: StepContext, name: str, version: str) -> str:
    """`` (aliases: challenger, champion)`` as the registry has them now, or nothing."""
    from loopml.core.errors import LoopmlError
    from loopml.registry.models import get_version

    try:
        aliases = get_version(context.settings, name, version).aliases
    except LoopmlError:
        return ""
    return f" (aliases: {', '.join(sorted(aliases))})" if aliases else ""


def _records(frame: Any) -> list[dict[str, Any]]:
    import json

    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records
