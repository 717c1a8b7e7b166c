"""What `loopml run` prints when a run ends: the comparison grid, the registered version."""

from __future__ import annotations

from rich.console import Console

from loopml.cli.render import frame_table, run_details
from loopml.engine import PipelineResult


def print_result(console: Console, result: PipelineResult) -> None:
    """Reports the steps left (tables as grids), then the run's record."""
    context = result.context
    import pandas as pd

    for name, report in context.reports.items():
        if isinstance(report, pd.DataFrame):
            console.print(frame_table(report, name, highlight=context.experiment.main_metric))
    registered = context.values.get("registered_model")
    if registered:
        console.print(f"[bold green]registered[/] {registered}")
    console.print(run_details(result.run))
