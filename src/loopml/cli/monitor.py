"""``loopml monitor NAME``: check windows of a model's prediction log, report and alert."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopml.core.errors import ConfigError, LoopmlError

if TYPE_CHECKING:
    from loopml.monitoring import MonitorRun


def monitor(
    name: Annotated[str, typer.Argument(help="Registered model name (as in the prediction log).")],
    reference: Annotated[
        Path,
        typer.Option(
            help="Reference data: the champion's training data (.csv, .zip, .parquet).",
            show_default=False,
        ),
    ],
    target: Annotated[
        str | None, typer.Option(help="Target column of the reference, left out of the features.")
    ] = None,
    window: Annotated[
        str, typer.Option(help="Window size: rows (10000) or time (30m, 6h, 1d, 1w).")
    ] = "10000",
    since: Annotated[
        str | None, typer.Option(help="Start of the log to check (ISO time); default: resume.")
    ] = None,
    all_windows: Annotated[
        bool, typer.Option("--all", help="Check the whole log again, not only new windows.")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST alerts here (default LOOPML_ALERT_WEBHOOK_URL).")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Thresholds per model, YAML (default LOOPML_MONITOR_POLICY_FILE)."),
    ] = None,
    drift_share: Annotated[
        float | None, typer.Option(help="Share of drifted features that is dataset drift.")
    ] = None,
    champion: Annotated[
        bool,
        typer.Option(help="Score the reference with NAME@champion, for prediction drift."),
    ] = True,
) -> None:
    """Check a model's prediction log window by window: drift, schema skew, performance.

    Every check is stored in the metadata store; alerts go to the log and the
    webhook. Retraining is left to the scheduled monitor, which has the queue.
    """
    from loopml.cli.main import err, fail, out, settings
    from loopml.monitoring import (
        Alerter,
        Reference,
        WindowSpec,
        load_policies,
        monitor_model,
        policy_for,
        read_table,
        write_report,
    )
    from loopml.monitoring.champion import champion_predictions
    from loopml.store.monitoring import MonitorStore
    from loopml.store.predictions import PredictionLog

    config = settings()
    try:
        spec = WindowSpec.parse(window)
        start = _parse_since(since)
        rules = policy_for(
            name, load_policies(policy or config.monitor_policy_file), drift_share=drift_share
        )
        with out.status("reading the reference data"):
            frame = read_table(reference)
            scored = champion_predictions(config, name, frame, target=target) if champion else None
            if scored is None and champion:
                err.print(f"no {name}@champion to score the reference: no prediction drift")
            ref = Reference.from_frame(
                frame, target=target, prediction=scored[1] if scored else None
            )
        log = PredictionLog.open(config.database)
        store = MonitorStore(log.engine)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
        ) as progress:
            task = progress.add_task(f"checking windows of {name}", total=None)
            run = monitor_model(
                name,
                log_store=log,
                store=store,
                reference=ref,
                policy=rules,
                window=spec,
                alerter=Alerter(webhook or config.alert_webhook_url),
                since=start,
                resume=not all_windows,
                on_window=lambda o: progress.update(
                    task, description=f"checked window {o.result.index} ({o.result.rows} rows)"
                ),
            )
        if report is not None:
            write_report(report, name, store.checks(name))
    except LoopmlError as error:
        fail(error)
    if not run.outcomes:
        out.print(f"no new predictions of {name!r} to check")
    else:
        out.print(_table(name, run))
    for outcome in run.outcomes:
        if outcome.alert_sent is False:
            err.print(f"[yellow]warning:[/] alert for window {outcome.result.index} not delivered")
    if report is not None:
        out.print(f"report: {report}")


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"--since {text!r}: expected an ISO time such as 2026-11-25T08:00"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _table(name: str, run: MonitorRun) -> Table:
    table = Table(title=f"monitoring {name}")
    for column in (
        "window",
        "start",
        "rows",
        "drift share",
        "drifted",
        "prediction drift",
        "schema skew",
        "accuracy",
        "est. accuracy",
        "action",
    ):
        table.add_column(column)
    for outcome in run.outcomes:
        result = outcome.result
        prediction = result.prediction_drift
        table.add_row(
            str(result.index),
            result.start.strftime("%Y-%m-%d %H:%M:%S"),
            str(result.rows),
            f"{result.drift_share:.0%}",
            ", ".join(result.drifted) or "-",
            "-" if prediction is None else ("[red]yes[/]" if prediction.drifted else "no"),
            "[red]yes[/]" if result.schema.found else "no",
            _metric(result.performance),
            _metric(result.estimated),
            outcome.action or "[green]ok[/]",
        )
    return table


def _metric(figures: dict[str, float]) -> str:
    if "accuracy" in figures:
        return f"{figures['accuracy']:.3f}"
    if "rmse" in figures:
        return f"rmse {figures['rmse']:.3g}"
    return "-"
