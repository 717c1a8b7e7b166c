"""``loopml monitor NAME``: check windows of a model's prediction log, report and alert."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopml.core.errors import ConfigError, LoopmlError

if TYPE_CHECKING:
    from loopml.core.settings import Settings
    from loopml.monitoring import MonitorRun
    from loopml.monitoring.lease import LeaseKeeper
    from loopml.monitoring.service import PassOptions, ReferenceCache


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
) -> None:
    """Check a model's prediction log window by window: drift, schema skew, performance.

    Every check is stored in the metadata store; alerts go to the log and the
    webhook. Drift or decay past the policy's thresholds queues the spec that
    made the champion on the policy's fresh data (one retrain in flight per
    model, then a cool-down); schema skew only alerts.
    """
    from loopml.cli.common import err, fail, out, settings
    from loopml.monitoring import WindowSpec, load_policies, policy_for, write_report
    from loopml.monitoring.lease import monitor_lease
    from loopml.monitoring.service import PassOptions, ReferenceCache
    from loopml.store.monitoring import MonitorStore

    config = settings()
    if every is not None:
        _stop_on_sigterm()
    try:
        options = PassOptions(
            window=WindowSpec.parse(window),
            policy=policy_for(
                name,
                load_policies(policy or config.monitor_policy_file),
                drift_share=drift_share,
                fresh_data=fresh_data,
            ),
            reference=reference,
            target=target,
            webhook=webhook,
            since=_parse_since(since),
            resume=not all_windows,
            champion=champion,
            retrain=retrain,
        )
        cache = ReferenceCache()
        # One process at a time runs a model's passes, across replicas (a lease row).
        with monitor_lease(config.database, name, config.monitor_lease_s) as lease:
            while True:
                if lease.acquire():
                    lease.run_pass(partial(_one_pass, config, name, options, cache))
                    if report is not None:
                        checks = MonitorStore.open(config.database).checks(name)
                        write_report(report, name, checks)
                        out.print(f"report: {report}")
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


def _one_pass(config: Settings, name: str, options: PassOptions, cache: ReferenceCache) -> None:
    from loopml.cli.common import err, out
    from loopml.monitoring.service import monitor_pass

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
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
        err.print(f"no {name}@champion to score the reference: no prediction drift")
    if not done.run.outcomes:
        out.print(f"no new predictions of {name!r} to check")
    else:
        out.print(_table(name, done.run))
    for outcome in done.run.outcomes:
        if outcome.alert_sent is False:
            err.print(f"[yellow]warning:[/] alert for window {outcome.result.index} not delivered")


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
    err.print(f"skipped: monitor {who} is running the passes of {name!r}; this one waits")


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
