"""Queue commands: ``submit``, ``jobs list|show|cancel``, ``worker``, ``api``, ``predict-batch``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loopml.cli.common import SpecArg, err, escape, fail, out, settings
from loopml.cli.render import seconds, status, when
from loopml.core.errors import ConfigError, LoopmlError
from loopml.core.status import Status

jobs_app = typer.Typer(
    help="Jobs sent to the queue: status, progress, cancel.", no_args_is_help=True
)


def submit(spec: SpecArg) -> None:
    """Check a spec like `validate`, queue it for a training worker, and print the job id."""
    from loopml.queue import make_app
    from loopml.queue.submit import submit_spec_file

    config = settings()
    try:
        job = submit_spec_file(make_app(config), config, spec)
    except LoopmlError as error:
        fail(error)
    out.print(
        f"job [cyan]{job.id}[/] queued on {job.queue}; `loopml jobs show {job.id}` follows it"
    )


def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated: training, inference, or both.")
    ] = "training,inference",
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once (processes).")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    max_tasks_per_child: Annotated[
        int | None,
        typer.Option(min=1, help="Replace a pool process after this many jobs (1: fresh per job)."),
    ] = None,
) -> None:
    """Consume jobs from the broker until stopped (Ctrl-C finishes running jobs first)."""
    from loopml.queue import declare_dead_letters, make_app
    from loopml.queue.tasks import preload
    from loopml.store.db import connect

    config = settings()
    try:
        app = make_app(config)
        names = [app.loopml_topology.queue_for(kind.strip()) for kind in queues.split(",")]
        connect(config.database).dispose()  # migrate once, before the pool forks
        declare_dead_letters(app)
        preload()
    except ValueError as error:
        fail(ConfigError(f"--queues {queues!r}: {error}"))
    except LoopmlError as error:
        fail(error)
    app.worker_main(
        [
            "worker",
            f"--queues={','.join(names)}",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            f"--hostname=loopml-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *([f"--max-tasks-per-child={max_tasks_per_child}"] if max_tasks_per_child else []),
        ]
    )


def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve without API keys (allowed on a loopback address only)."
        ),
    ] = False,
) -> None:
    """Serve the jobs API (POST /jobs, GET /jobs, GET /jobs/{id}); keys from LOOPML_API_KEYS."""
    import uvicorn

    from loopml.api import create_app

    config = settings()
    if no_auth and not _loopback(host):
        fail(
            ConfigError(
                f"--no-auth is allowed on a loopback address only (127.0.0.1, ::1, localhost), "
                f"not --host {host}; set LOOPML_API_KEYS instead"
            )
        )
    try:
        app = create_app(config, bind_host=host, port=port, no_auth=no_auth)
    except LoopmlError as error:
        fail(error)
    uvicorn.run(app, host=host, port=port)


def _loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def predict_batch(
    model: Annotated[str, typer.Option(help="NAME@ALIAS or NAME/VERSION, e.g. fraud@champion.")],
    input: Annotated[Path, typer.Option("--input", help="CSV or Parquet rows to score.")],
    output: Annotated[Path, typer.Option("--output", help="Scored file (CSV or Parquet).")],
    queue: Annotated[bool, typer.Option("--queue", help="Score on inference workers.")] = False,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per batch.")] = 10_000,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
) -> None:
    """Score a file with a registered model; every prediction goes to the prediction log."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from loopml.batch import ModelRef
    from loopml.batch.files import check_output, read_table, write_table

    config = settings()
    try:
        ref = ModelRef.parse(model)
        check_output(output)
        frame = read_table(input)
        with Progress(
            "[bold]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
        ) as bar:
            task = bar.add_task("scoring rows", total=len(frame))

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            scored = _score(config, ref, frame, queue, batch_rows, timeout, advance)
        write_table(scored, output)
    except LoopmlError as error:
        fail(error)
    out.print(f"[green]scored[/] {len(scored)} rows with {model} -> {output}")


def _score(
    config: Any, ref: Any, frame: Any, queue: bool, batch_rows: int, timeout: Any, advance: Any
) -> Any:
    if queue:
        from loopml.queue import make_app
        from loopml.queue.batches import score_through_queue

        job_id, scored = score_through_queue(
            make_app(config),
            config,
            ref,
            frame,
            batch_rows=batch_rows,
            progress=advance,
            timeout_seconds=timeout,
        )
        err.print(f"batch job {job_id}")
        return scored
    from loopml.batch import load_model
    from loopml.batch.local import score_locally
    from loopml.store.predictions import PredictionLog

    log = PredictionLog.open(config.database)
    try:
        return score_locally(
            load_model(config, ref), frame, log, batch_rows=batch_rows, progress=advance
        )
    finally:
        log.engine.dispose()


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
) -> None:
    """List submitted jobs, newest first."""
    from loopml.store.jobs import JobStore

    try:
        store = JobStore(settings().database)
        found = store.list(limit=limit, status=status_)
        store.close()
    except LoopmlError as error:
        fail(error)
    if not found:
        out.print("no jobs yet; `loopml submit SPEC` queues one")
        return
    table = Table(title="jobs")
    for column in (
        "job id",
        "kind",
        "status",
        "model",
        "progress",
        "submitted",
        "duration",
        "worker",
    ):
        table.add_column(column)
    for job in found:
        table.add_row(
            job.id,
            job.kind,
            status(job.status),
            job.model_name or "-",
            _progress(job),
            when(job.submitted_at),
            seconds(job.duration_s),
            job.worker or "-",
        )
    out.print(table)


def _progress(job: Any) -> str:
    total = "?" if job.steps_total is None else str(job.steps_total)
    text = f"{job.steps_done}/{total}"
    return f"{text} ({job.current_step})" if job.current_step else text


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")]) -> None:
    """Show one job: status, progress, timings, run id, registered model, error."""
    from loopml.core.access import mask_secrets
    from loopml.store.jobs import JobStore

    try:
        store = JobStore(settings().database)
        job = store.get(job_id)
        store.close()
    except LoopmlError as error:
        fail(error)
    table = Table(show_header=False, title=f"job {job.id}")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, Any]] = [
        ("kind", job.kind),
        ("status", status(job.status)),
        ("queue", job.queue),
        ("model", job.model_name or "-"),
        ("spec", job.spec_source or ("(given inline)" if job.spec_text else "-")),
        ("progress", _progress(job)),
        ("submitted", when(job.submitted_at)),
        ("started", when(job.started_at)),
        ("ended", when(job.ended_at)),
        ("duration", seconds(job.duration_s)),
        ("attempts", job.attempts),
        ("worker", job.worker or "-"),
        ("run id", job.run_id or "-"),
        ("registered model", _registered(job)),
    ]
    rows += [(f"detail: {key}", value) for key, value in sorted(job.details.items())]
    if job.cancel_requested:
        rows.append(("cancel requested", "yes"))
    if job.error:
        rows.append(("error", f"[red]{escape(mask_secrets(job.error) or '')}[/]"))
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)


def _registered(job: Any) -> str:
    if job.registered_name is None:
        return "-"
    return f"{job.registered_name} version {job.registered_version}"


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
) -> None:
    """Cancel a job: a queued one never starts, a running one stops before its next step."""
    from loopml.store.jobs import JobStore

    try:
        store = JobStore(settings().database)
        job = store.request_cancel(job_id)
        store.close()
    except LoopmlError as error:
        fail(error)
    if job.status == Status.RUNNING:
        out.print(f"job {job.id}: cancel requested; it stops before its next step")
    else:
        out.print(f"job {job.id}: {job.status}")


def install(app: typer.Typer) -> None:
    """Add the queue commands to the ``loopml`` app."""
    app.command()(submit)
    app.command()(worker)
    app.command()(api)
    app.command("predict-batch")(predict_batch)
    app.add_typer(jobs_app, name="jobs")
