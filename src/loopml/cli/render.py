"""Tables for runs, steps and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table

from loopml.core.status import Status
from loopml.store.runs import RunView

_STATUS_STYLE: dict[str, str] = {
    Status.SUCCEEDED: "green",
    Status.FAILED: "red",
    Status.RUNNING: "yellow",
    Status.REJECTED: "magenta",  # refused before it ran: nothing to retry, fix the input
}


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def status(value: str) -> str:
    style = _STATUS_STYLE.get(value, "white")
    return f"[{style}]{value}[/]"


def runs_table(runs: list[RunView]) -> Table:
    table = Table(title="pipeline runs", show_lines=False)
    for column in (
        "run id",
        "status",
        "model",
        "experiment",
        "started",
        "duration",
        "steps",
        "executor",
    ):
        table.add_column(column)
    for run in runs:
        latest = run.latest_steps()
        done = sum(1 for step in latest.values() if step.status == Status.SUCCEEDED)
        table.add_row(
            run.id,
            status(run.status),
            run.model_name,
            run.experiment_name,
            when(run.started_at),
            seconds(run.duration_s),
            f"{done}/{len(latest)}",
            f"{run.executor}@{run.host}",
        )
    return table


def run_details(run: RunView) -> Table:
    table = Table(show_header=False, title=f"run {run.id}")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, Any]] = [
        ("status", status(run.status)),
        ("experiment", run.experiment_name),
        ("model", run.model_name),
        ("spec", run.spec_source or "(given inline)"),
        ("spec hash", run.spec_hash),
        ("started", when(run.started_at)),
        ("ended", when(run.ended_at)),
        ("duration", seconds(run.duration_s)),
        ("attempts", run.attempts),
        ("executor", run.executor),
        ("host / user", f"{run.host} / {run.user}"),
        ("loopml", run.loopml_version),
        ("git commit", run.git_commit or "-"),
        ("data fingerprint", run.data_fingerprint or "-"),
        ("seed", "-" if run.seed is None else run.seed),
        ("loopml commit", (run.reproducibility or {}).get("loopml_git_commit") or "-"),
        ("code hash", run.code_hash or "-"),
        ("environment hash", run.environment_hash or "-"),
        ("mlflow run", run.mlflow_run_id or "-"),
    ]
    if run.smoke:
        rows.insert(1, ("smoke", "yes: fast profile, no alias moved"))
    rows += [(f"value: {key}", value) for key, value in sorted(run.values.items())]
    if run.error:
        rows.append(("error", f"[red]{run.error}[/]"))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def steps_table(run: RunView) -> Table:
    table = Table(title="steps")
    for column in ("#", "step", "attempt", "status", "started", "duration", "outputs", "error"):
        table.add_column(column)
    for step in run.steps:
        table.add_row(
            str(step.position),
            step.name,
            str(step.attempt),
            status(step.status),
            when(step.started_at),
            seconds(step.duration_s),
            ", ".join(step.outputs) or "-",
            step.error or "",
        )
    return table


def frame_table(frame: Any, title: str, highlight: str | None = None) -> Table:
    """A pandas frame as a Rich table, numbers to four places, like PyCaret's grid."""
    table = Table(title=title)
    for column in frame.columns:
        style = "bold cyan" if column == highlight else None
        table.add_column(str(column), style=style, justify="right" if column != "Model" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{cell:.4f}" if isinstance(cell, float) else str(cell) for cell in row))
    return table
