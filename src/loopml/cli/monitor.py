"""``loopml monitor NAME``: check windows of a model's prediction log, report and alert."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopml.cli.output import Format, FormatOpt, emit, say, show
from loopml.core.errors import ConfigError, LoopmlError

if TYPE_CHECKING:
    from loopml.cli.shapes import MonitorOutput
    from loopml.core.settings import Settings
    from loopml.monitoring import MonitorPolicy, MonitorRun
    from loopml.monitoring.lease import LeaseKeeper
    from loopml.monitoring.service import MonitorPass, PassOptions, ReferenceCache


def monitor(
    name: Annotated[str, typer.Argument(help="Registered model name (as in the prediction log).")],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Reference data (.csv, .zip, .parquet); default: the file the champion's spec "
            "trained on.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="Target column of the reference; default: the champion spec's target."),
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
    fresh_data: Annotated[
        str | None,
        typer.Option(help="Data a retrain trains on (overrides the policy's fresh_data)."),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(help="Queue the champion's spec on fresh data when the policy asks."),
    ] = True,
    every: Annotated[
        float | None,
        typer.Option(
            help="Keep monitoring: a pass every this many seconds (the scheduled monitor)."
        ),
    ] = None,
    materialize: Annotated[
        str | None,
        typer.Option(
            help="Feast repo to materialize (incrementally) before each pass, so online "
            "features stay fresh; stale views alert either way.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Metric decay is judged by (f1, accuracy, kappa, rmse, ...); default: the "
            "policy's metric, else the champion's main_metric.",
            show_default=False,
        ),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Check a model's prediction log window by window: drift, schema skew, performance.

    Every check is stored in the metadata store; alerts go to the log and the
    webhook. Decay is judged by the champion's own main_metric (F1 for a fraud
    spec) unless the policy or --metric names another. Drift or decay past the
    policy's thresholds queues the spec that made the champion on the policy's
    fresh data (one retrain in flight per model, then a cool-down); schema
    skew only alerts.
    """
    from loopml.cli.common import err, fail, out, settings
    from loopml.monitoring import WindowSpec, load_policies, write_report
    from loopml.monitoring.lease import monitor_lease
    from loopml.monitoring.service import PassOptions, ReferenceCache
    from loopml.store.monitoring import MonitorStore

    config = settings()
    if every is not None:
        _stop_on_sigterm()
    try:
        options = PassOptions(
            window=WindowSpec.parse(window),
            policy=_policy(
                name,
                load_policies(policy or config.monitor_policy_file),
                drift_share=drift_share,
                fresh_data=fresh_data,
                metric=metric,
            ),
            reference=reference,
            target=target,
            webhook=webhook,
            since=_parse_since(since),
            resume=not all_windows,
            champion=champion,
            retrain=retrain,
            materialize=materialize,
        )
        cache = ReferenceCache()
        # One process at a time runs a model's passes, across replicas (a lease row).
        with monitor_lease(config.database, name, config.monitor_lease_s) as lease:
            while True:
                if lease.acquire():
                    done = lease.run_pass(partial(_one_pass, config, name, options, cache, format))
                    if report is not None:
                        checks = MonitorStore.open(config.database).checks(name)
                        write_report(report, name, checks)
                    if format is Format.json:
                        emit(_shape(name, done.run, report))
                    elif report is not None:
                        say(out, f"report: {report}")
                else:
                    _lease_held(name, lease)
                if every is None:
                    return
                time.sleep(every)
                options = replace(options, since=None, resume=True)
    except LoopmlError as error:
        fail(error)
    except KeyboardInterrupt:
        err.print("monitor stopped")


def _policy(name: str, policies: dict[str, MonitorPolicy], **overrides: Any) -> MonitorPolicy:
    from loopml.monitoring import policy_for

    try:
        return policy_for(name, policies, **overrides)
    except ValidationError as exc:  # --metric names nothing the monitor computes
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"--metric {overrides.get('metric')!r}: {reason}") from None


def _one_pass(
    config: Settings, name: str, options: PassOptions, cache: ReferenceCache, format: Format
) -> MonitorPass:
    from loopml.cli.common import err, out, where
    from loopml.cli.quiet import quiet_mlflow
    from loopml.monitoring.service import monitor_pass

    quiet_mlflow()
    console = out if format is Format.table else err
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"checking windows of {name}", total=None)
        done = monitor_pass(
            config,
            name,
            options,
            on_window=lambda o: progress.update(
                task, description=f"checked window {o.result.index} ({o.result.rows} rows)"
            ),
            cache=cache,
        )
    if not done.prediction_drift_reference and options.champion:
        say(err, f"no {name}@champion to score the reference: no prediction drift")
    if format is Format.table:
        if not done.run.outcomes:
            say(out, f"no new predictions of {name!r} to check in {where(config)}")
        else:
            show(out, _table(name, done.run))
    for outcome in done.run.outcomes:
        if outcome.alert_sent is False:
            say(err, f"[yellow]warning:[/] alert for window {outcome.result.index} not delivered")
    return done


def _shape(name: str, run: MonitorRun, report: Path | None) -> MonitorOutput:
    from loopml.cli.shapes import MonitorOutput, MonitorWindow

    windows = []
    for outcome in run.outcomes:
        result = outcome.result
        windows.append(
            MonitorWindow(
                window=result.index,
                start=result.start,
                end=result.end,
                rows=result.rows,
                complete=result.complete,
                model_version=result.model_version,
                drift_share=result.drift_share,
                drifted=list(result.drifted),
                prediction_drift=None
                if result.prediction_drift is None
                else bool(result.prediction_drift.drifted),
                schema_skew=bool(result.schema.found),
                metric=run.metric,
                performance=_numbers(result.performance),
                estimated=_numbers(result.estimated),
                findings=[finding.message for finding in outcome.findings],
                action=outcome.action or "ok",
            )
        )
    return MonitorOutput(
        model=name,
        metric=run.metric,
        windows=windows,
        report=None if report is None else str(report),
    )


def _numbers(figures: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in figures.items() if isinstance(v, int | float) and v == v}


def _stop_on_sigterm() -> None:
    """SIGTERM (a container stopping) ends the loop like Ctrl-C: the lease is handed back."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _lease_held(name: str, lease: LeaseKeeper) -> None:
    from loopml.cli.common import err

    current = lease.store.lease(name)
    who = f"{current.holder} (until {current.expires_at:%H:%M:%S} UTC)" if current else "another"
    say(err, f"skipped: monitor {who} is running the passes of {name!r}; this one waits")


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
    table = Table(title=f"monitoring {name} (decay judged by {run.metric})")
    for column in (
        "window",
        "start",
        "rows",
        "drift share",
        "drifted",
        "prediction drift",
        "schema skew",
        run.metric,
        f"est. {run.metric}",
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
            _metric(result.performance, run.metric),
            _metric(result.estimated, run.metric),
            escape(outcome.action) or "[green]ok[/]",
        )
    return table


def _metric(figures: dict[str, float], metric: str) -> str:
    value = figures.get(metric)
    return "-" if value is None else f"{value:.4g}"
