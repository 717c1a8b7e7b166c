"""Queue commands: ``submit``, ``jobs list|show|cancel``, ``worker``, ``api``, ``predict-batch``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from loopml.cli.common import SpecArg, err, escape, fail, out, settings, where
from loopml.cli.output import Format, FormatOpt, emit, say, show
from loopml.cli.render import seconds, status, when
from loopml.core.errors import ConfigError, LoopmlError
from loopml.core.status import Status

if TYPE_CHECKING:
    from loopml.core.context import GateDecision

jobs_app = typer.Typer(
    help="Jobs sent to the queue: status, progress, cancel.", no_args_is_help=True
)


def submit(
    spec: SpecArg,
    smoke: Annotated[
        bool,
        typer.Option("--smoke", help="Run it with the fast smoke profile; no alias moves."),
    ] = False,
) -> None:
    """Check a spec like `validate`, queue it for a training worker, and print the job id."""
    from loopml.cli.datafiles import check_data_files
    from loopml.queue import make_app
    from loopml.queue.submit import submit_spec_file

    config = settings()
    try:
        check_data_files(spec)
        job = submit_spec_file(make_app(config), config, spec, smoke=smoke)
    except LoopmlError as error:
        fail(error)
    say(out, f"job [cyan]{job.id}[/] queued on {job.queue}; `loopml jobs show {job.id}` follows it")


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
    from loopml.cli.quiet import quiet_mlflow
    from loopml.queue import declare_dead_letters, make_app
    from loopml.queue.tasks import preload
    from loopml.store.db import connect

    quiet_mlflow()
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
    input: Annotated[
        str,
        typer.Option(
            "--input", help="Rows to score: .csv, .parquet or .pq (path or s3://; Spark: a folder)."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", help="Scored file (.csv, .parquet, .pq); an existing one needs --overwrite."
        ),
    ],
    engine: Annotated[
        str, typer.Option(help="local (in this process), queue (inference workers), spark.")
    ] = "local",
    queue: Annotated[bool, typer.Option("--queue", help="Same as --engine queue.")] = False,
    master: Annotated[
        str | None, typer.Option(help="Spark master URL (--engine spark); default local[*].")
    ] = None,
    by_reference: Annotated[
        bool,
        typer.Option(
            "--by-reference",
            help="--engine queue, Parquet input the workers can read: send row ranges, not rows.",
        ),
    ] = False,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = 10_000,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="--engine queue: give up after this many seconds (the others run on)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --output if it exists (whole, at the end).")
    ] = False,
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-o",
            help="table (a line for people) or json (docs/cli.md); --output is the scored file.",
            case_sensitive=False,
        ),
    ] = Format.table,
) -> None:
    """Score a file with a registered model; each chunk is logged as one batch-log segment."""
    from loopml.batch import ModelRef
    from loopml.batch.engines import BatchRequest, get_engine
    from loopml.cli.quiet import quiet_mlflow
    from loopml.cli.shapes import BatchOutput
    from loopml.core.errors import InputError

    config = settings()
    quiet_mlflow()
    try:
        name = "queue" if queue else engine
        if queue and engine not in ("local", "queue"):
            raise ConfigError(
                f"--queue means --engine queue; drop one of --queue, --engine {engine}"
            )
        chosen = get_engine(name)
        _check_files(input, output, name, by_reference=by_reference, overwrite=overwrite)
        ref = ModelRef.parse(model)
        pinned = ref.pin(config)  # one version for the whole file, named in the summary
        assert pinned.version is not None
        from loopml.batch.features import join_offline_file
        from loopml.batch.files import check_output, read_table, write_table

        with tempfile.TemporaryDirectory(prefix="loopml-batch-") as scratch:
            # entity-only files of a version trained from a feature store: features joined first
            source, entities = join_offline_file(
                config, pinned.name, pinned.version, input, scratch
            )
            target = str(output)
            if entities is not None:
                check_output(output)
                target = str(Path(scratch) / f"scored{Path(str(output)).suffix or '.parquet'}")
            request = BatchRequest(
                settings=config,
                model=pinned,
                input=str(source),
                output=target,
                batch_rows=batch_rows,
                master=master,
                timeout_seconds=timeout,
                options={"by_reference": by_reference, "overwrite": overwrite},
            )
            with _bar(err if format is Format.json else out) as advance:
                result = chosen.score(request, advance)
            if entities is not None:  # the entity keys back in front of the scored rows
                write_table(entities.join(read_table(target)), output)
                result.output = str(output)
    except InputError as error:
        fail(ConfigError(str(error)))  # bad input: one line, exit code 2
    except LoopmlError as error:
        fail(error)
    except (ValueError, KeyError, TypeError) as error:  # the model refused the rows
        fail(
            ConfigError(
                f"{input}: {model} cannot score these rows: "
                f"{type(error).__name__}: {' '.join(str(error).split())}"
            )
        )
    summary = BatchOutput(
        model=result.model,
        version=result.version,
        rows=result.rows,
        input=str(input),
        output=result.output,
        job_id=result.job_id,
        engine=result.engine,
        batch_id=result.job_id,
        chunks=result.chunks,
        seconds=round(result.seconds, 3),
        rows_per_second=round(result.rows_per_second, 1),
        startup_seconds=round(result.startup_seconds, 3),
        log=result.log,
    )
    if format is Format.json:
        emit(summary)
        return
    say(
        out,
        f"[green]scored[/] {result.rows} rows with {result.model} version {result.version}"
        f"{'' if ref.version else f' ({model})'} on {result.engine} in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s) -> {result.output}",
    )
    say(out, f"batch {result.job_id}: {result.chunks} chunks logged under {result.log}")


def _check_files(
    input: str, output: str, engine: str, *, by_reference: bool, overwrite: bool
) -> None:
    """Refuse, before any model is loaded, files no engine could use: bad input, exit code 2.

    Every engine gets the same checks (the Spark engine used to meet a missing
    file only inside Spark, as a Java stack trace); Spark alone reads and writes folders.
    """
    from loopml.batch.files import check_input, check_output, is_remote

    spark = engine == "spark"
    if by_reference:
        if engine != "queue":
            raise ConfigError(
                f"--by-reference sends row ranges to queue workers: it needs --engine queue, "
                f"not --engine {engine}"
            )
        if not str(input).lower().endswith((".parquet", ".pq")):
            raise ConfigError(
                f"--by-reference needs a Parquet --input (workers read row ranges of its row "
                f"groups), not {input}; drop --by-reference to send CSV rows in the messages"
            )
    if not is_remote(input):
        check_input(input, folders=spark)
        if not is_remote(output) and Path(output).resolve() == Path(input).resolve():
            raise ConfigError(f"--output {output} is the --input file; choose another name")
    check_output(output, overwrite=overwrite, folders=spark)


@contextmanager
def _bar(console: Any) -> Iterator[Callable[[int, int | None], None]]:
    """A bar over chunks on a terminal; off one, nothing (a pipe would fill with redraws)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    if not console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("scoring chunks", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """List submitted jobs, newest first."""
    from loopml.cli.shapes import JobSummary
    from loopml.store.jobs import JobStore

    config = settings()
    try:
        store = JobStore(config.database)
        found = store.list(limit=limit, status=status_)
        store.close()
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit([JobSummary.of(job) for job in found])
    if not found:
        which = " matching" if status_ else ""
        say(
            err if format is Format.json else out,
            f"no{which} jobs in {where(config)}; `loopml submit SPEC` queues one",
        )
        return
    if format is Format.json:
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
    show(out, table)


def _progress(job: Any) -> str:
    total = "?" if job.steps_total is None else str(job.steps_total)
    text = f"{job.steps_done}/{total}"
    text = f"{text} ({job.current_step})" if job.current_step else text
    step = (job.details or {}).get("progress")
    if isinstance(step, dict) and not job.finished:  # e.g. "rf tuning ... (best AUC 0.91)"
        done, of = step.get("completed"), step.get("total")
        count = f" {done:g}/{of:g}" if isinstance(done, int | float) and of else ""
        text += f"; {escape(str(step.get('description', '')))}{count}"
    return text


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    format: FormatOpt = Format.table,
) -> None:
    """Show one job: status, progress, timings, run id, registered model, gate decision, error."""
    from loopml.cli.shapes import JobDetail
    from loopml.core.access import mask_secrets
    from loopml.store.jobs import JobStore

    config = settings()
    try:
        store = JobStore(config.database)
        job = store.get(job_id)
        store.close()
        gate = _gate(config, job.run_id)
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit(JobDetail.with_gate(job, gate))
        return
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
        ("gate", _gate_text(gate)),
    ]
    rows += [
        (f"detail: {key}", value) for key, value in sorted(job.details.items()) if key != "progress"
    ]
    if job.cancel_requested:
        rows.append(("cancel requested", "yes"))
    if job.error:
        rows.append(("error", f"[red]{escape(mask_secrets(job.error) or '')}[/]"))
    for name, value in rows:
        table.add_row(name, str(value))
    show(out, table)


def _gate(config: Any, run_id: str | None) -> GateDecision | None:
    """The gate's decision recorded by the job's run (None: no run, or no gate step)."""
    from loopml.store import RunStore

    if not run_id:
        return None
    store = RunStore(config.database)
    try:
        return store.get_run(run_id).gate
    except LoopmlError:
        return None  # the run row is gone: the job still shows
    finally:
        store.close()


def _gate_text(gate: GateDecision | None) -> str:
    if gate is None:
        return "-"
    text = str(gate.decision)
    return f"{text}: {escape(gate.reason)}" if gate.reason else text


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
