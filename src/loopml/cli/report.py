"""What `loopml run` prints when a run ends: the comparison grid, the registered version."""

from __future__ import annotations

from rich.console import Console

from loopml.cli.render import frame_table, run_details
from loopml.core.context import StepContext
from loopml.engine import PipelineResult


def print_result(console: Console, result: PipelineResult) -> None:
    """Reports the steps left (tables as grids), then the run's record."""
    context = result.context
    import pandas as pd

    for name, report in context.reports.items():
        if isinstance(report, pd.DataFrame):
            console.print(frame_table(report, name, highlight=context.experiment.main_metric))
    registered = context.registered
    if registered is not None:
        console.print(
            f"[bold green]registered[/] {registered.name} version {registered.version}"
            + _aliases(context, registered.name, registered.version)
        )
    console.print(run_details(result.run))


def _aliases(context: StepContext, name: str, version: str) -> str:
    """`` (aliases: challenger, champion)`` as the registry has them now, or nothing."""
    from loopml.core.errors import LoopmlError
    from loopml.registry.models import get_version

    try:
        aliases = get_version(context.settings, name, version).aliases
    except LoopmlError:
        return ""
    return f" (aliases: {', '.join(sorted(aliases))})" if aliases else ""
