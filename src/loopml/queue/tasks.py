"""The tasks: run a training job, score a batch, work on a tuning study. All are safe to run twice.

A training job's id is its pipeline run's id. A delivery finds the run the
previous attempt left (if any) and resumes it from its first unfinished step,
so however often the broker redelivers, the metadata store ends with one run
per job. A batch writes predictions under ids derived from the batch id, so
a second delivery writes nothing new. A trial task runs trials of a job's
study until it has ``n_iter`` (:mod:`loopml.steps.tuning`); a second
delivery finds the study further along, or complete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

from billiard.exceptions import Terminated, WorkerLostError
from celery import Celery, Task
from celery.exceptions import Reject, SoftTimeLimitExceeded, TimeLimitExceeded

from loopml.core.access import HTTP, DataPolicy
from loopml.core.errors import (
    DataError,
    JobCancelledError,
    LoopmlError,
    MessageError,
    ModelLoadError,
    ModelNotFoundError,
    ModelReferenceError,
    RunNotFoundError,
    SkewError,
    SpecError,
    StepError,
    UntrustedModelError,
)
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue.messages import (
    BatchMessage,
    M,
    TrainingMessage,
    TrialMessage,
    job_id_of,
    parse_message,
)
from loopml.queue.observer import JobObserver
from loopml.queue.topology import BATCH_JOB_TASK, SCORE_TASK, TRAIN_TASK, TUNE_TASK, Topology
from loopml.store.jobs import BATCH, TRAINING, JobStore, JobView

log = logging.getLogger(__name__)
#: Celery's request, with ``Reject(requeue=False)`` dead-lettering the message with its reason.
DEAD_LETTERING_REQUEST = "loopml.queue.consumer:DeadLetteringRequest"


def register(app: Celery, settings: Settings, topology: Topology) -> None:
    """Add the training and scoring tasks to ``app``."""

    @app.task(  # type: ignore[untyped-decorator]
        name=TRAIN_TASK,
        base=_TrainingTask,
        bind=True,
        soft_time_limit=settings.training_time_limit,
        time_limit=settings.training_hard_limit,
        Request=DEAD_LETTERING_REQUEST,
    )
    def train(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return run_training_job(
            settings, topology, args, kwargs, worker=self.request.hostname, app=app
        )

    @app.task(  # type: ignore[untyped-decorator]
        name=TUNE_TASK,
        bind=True,
        soft_time_limit=settings.training_time_limit,
        time_limit=settings.training_hard_limit,
        Request=DEAD_LETTERING_REQUEST,
    )
    def tune_trials(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return run_trials(settings, args, kwargs)

    @app.task(  # type: ignore[untyped-decorator]
        name=BATCH_JOB_TASK,
        base=_TrainingTask,
        bind=True,
        soft_time_limit=settings.training_time_limit,
        time_limit=settings.training_hard_limit,
        Request=DEAD_LETTERING_REQUEST,
    )
    def batch_job(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from loopml.queue.batch_jobs import run_batch_job

        return run_batch_job(settings, topology, args, kwargs, worker=self.request.hostname)

    @app.task(  # type: ignore[untyped-decorator]
        name=SCORE_TASK, bind=True, Request=DEAD_LETTERING_REQUEST
    )
    def score_batch(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return run_batch(settings, topology, args, kwargs)


class _TrainingTask(Task):  # type: ignore[misc]
    """Records a job failure the task body could not record itself.

    Celery calls ``on_failure`` in the worker's main process when it kills a
    job at the hard time limit. A job whose process was lost (worker killed,
    connection dropped) is not failed here: the broker redelivers it.
    """

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if isinstance(exc, WorkerLostError | Terminated):
            return
        job_id = job_id_of(kwargs if isinstance(kwargs, dict) else {})
        if job_id is None:
            return
        if isinstance(exc, TimeLimitExceeded):
            text = "killed: the job ran past its hard time limit (LOOPML_TRAINING_TIME_LIMIT)"
        elif isinstance(exc, SoftTimeLimitExceeded):
            text = _failure(exc, "")[1]
        else:
            text = f"{type(exc).__name__}: {exc}"
        settings: Settings = self.app.loopml_settings
        jobs = JobStore(settings.database)
        try:
            if jobs.find(job_id) is not None:
                jobs.finish(job_id, Status.FAILED, error=text)
        finally:
            jobs.close()
        _close_run(settings, job_id, text)


def preload() -> None:
    """Import what every job needs once, in the worker's main process, before the pool forks.

    Pool processes then start each job at once instead of spending seconds on
    imports, and a short time limit never strikes halfway through an import.
    """
    import mlflow.sklearn  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.pipeline  # noqa: F401

    import loopml.batch
    import loopml.engine  # noqa: F401
    from loopml.steps.registry import StepRegistry

    StepRegistry.with_builtins().load_all()


def _dead_letter(
    jobs: JobStore, job_id: str | None, error: str, status: Status = Status.REJECTED
) -> Reject:
    """Mark the job ``status`` (rejected: it could never run) and return the dead-lettering Reject.

    The Reject's reason travels with the dead letter (``x-loopml-reason``).
    """
    if job_id is not None:
        jobs.finish(job_id, status, error=f"dead-lettered: {error}")
    log.error("dead-lettering job %s: %s", job_id, error)
    return Reject(error, requeue=False)


def run_training_job(
    settings: Settings,
    topology: Topology,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    worker: str,
    app: Celery | None = None,
) -> dict[str, Any]:
    """Run (or resume) the job in the message; its final status.

    With ``app``, the job may publish trial tasks for its tuning study.
    """
    jobs = JobStore(settings.database)
    try:
        started = begin_attempt(
            jobs,
            TrainingMessage,
            args,
            kwargs,
            settings=settings,
            worker=worker,
            record=lambda job_id: jobs.create(
                job_id,
                kind=TRAINING,
                queue=topology.training,
                spec_text=kwargs.get("spec") if isinstance(kwargs.get("spec"), str) else None,
                spec_source=kwargs.get("source") if isinstance(kwargs.get("source"), str) else None,
            ),
        )
        if isinstance(started, dict):
            return started
        return _train(settings, jobs, started.message, started.number, worker, app)
    finally:
        jobs.close()


@dataclass(frozen=True)
class Attempt(Generic[M]):
    """A delivery admitted as its job's next attempt: the parsed message, the attempt's number."""

    message: M
    number: int
    before: JobView
    """The job as it was before this attempt started (its details, its last step)."""


def begin_attempt(
    jobs: JobStore,
    kind: type[M],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    settings: Settings,
    worker: str,
    record: Callable[[str], object],
) -> Attempt[M] | dict[str, Any]:
    """Admit a job task's delivery as the job's next attempt, or say why nothing is to run.

    One rule set for every job task (training, batch scoring), so they cannot
    drift apart: ``record`` writes the job row for an id seen first here (a
    message published past the API); a malformed message is dead-lettered with
    the job marked rejected; a finished job is not run again and a job
    cancelled while queued never starts (both return the job's final status);
    a job delivered more than ``LOOPML_MAX_DELIVERIES`` times is dead-lettered
    as failed, naming its last known step.
    """
    job_id = job_id_of(kwargs)
    if job_id is not None:
        record(job_id)
    try:
        message = parse_message(kind, args, kwargs)
    except MessageError as error:
        raise _dead_letter(jobs, job_id, str(error)) from error
    admitted: str = message.job_id  # type: ignore[attr-defined]  # every job message has one
    before = jobs.start_attempt(admitted, worker)
    if before.finished:
        log.info("job %s already %s; nothing to do", admitted, before.status)
        return {"job_id": admitted, "status": before.status}
    if before.cancel_requested:
        jobs.finish(admitted, Status.CANCELLED, error="cancelled before it started")
        return {"job_id": admitted, "status": Status.CANCELLED}
    number = before.attempts + 1
    if number > settings.max_deliveries:
        raise _dead_letter(
            jobs,
            admitted,
            f"delivered {number} times without finishing (LOOPML_MAX_DELIVERIES="
            f"{settings.max_deliveries}); last known step: {before.current_step or '-'}",
            Status.FAILED,
        )
    return Attempt(message, number, before)


def _train(
    settings: Settings,
    jobs: JobStore,
    message: TrainingMessage,
    attempt: int,
    worker: str,
    app: Celery | None = None,
) -> dict[str, Any]:
    from loopml.engine import check_spec_text, run_job
    from loopml.steps.registry import StepRegistry

    job_id = message.job_id
    registry = StepRegistry.with_builtins()
    details = jobs.get(job_id).details
    if details.get("origin") == HTTP:  # a stranger's spec: restricted data
        settings = settings.model_copy(update={"restrict_data": True})
    try:
        _end_active_mlflow_run(settings)
        try:
            checked = check_spec_text(
                message.spec,
                registry,
                source=Path(message.source) if message.source else None,
                peek_data=attempt == 1,
                policy=DataPolicy.from_settings(settings),
            )
        except SpecError as error:
            raise _dead_letter(jobs, job_id, str(error)) from error
        jobs.progress(job_id, model_name=checked.experiment.model_name)
        with _trials_published_by(app):
            outcome = run_job(
                job_id,
                checked,
                settings,
                registry=registry,
                observer=JobObserver(jobs, job_id),
                executor=f"celery:{worker}",
                smoke=details.get("smoke") is True,
            )
    except StepError as error:
        status, text = _failure(error.cause, str(error))
        jobs.finish(job_id, status, error=text)
        return {"job_id": job_id, "status": status}
    except (JobCancelledError, SoftTimeLimitExceeded) as error:
        status, text = _failure(error, str(error))
        _close_run(settings, job_id, text)
        jobs.finish(job_id, status, error=text)
        return {"job_id": job_id, "status": status}
    except Reject:
        raise
    except LoopmlError as error:
        jobs.finish(job_id, Status.FAILED, error=str(error))
        return {"job_id": job_id, "status": Status.FAILED}
    registered = outcome.registered
    pair = None if registered is None else (registered.name, registered.version)
    jobs.progress(job_id, run_id=job_id)
    jobs.finish(job_id, Status.SUCCEEDED, registered=pair)
    return {
        "job_id": job_id,
        "status": Status.SUCCEEDED,
        "registered_model": None
        if registered is None
        else {"name": registered.name, "version": registered.version},
    }


def _trials_published_by(app: Celery | None) -> Any:
    """Let the job's tuning fan trials out as trial tasks on the training queue."""
    from contextlib import nullcontext

    from loopml.steps.tuning import trial_publisher

    if app is None:
        return nullcontext()

    def publish(job_id: str, estimator_id: str, count: int) -> None:
        from loopml.queue.submit import publish as send

        for number in range(count):
            ticket = f"{job_id}-{estimator_id}-{number}"
            send(
                app,
                TUNE_TASK,
                ticket,
                {"job_id": job_id, "estimator": estimator_id, "ticket": ticket},
            )

    return trial_publisher(publish)


def run_trials(settings: Settings, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Work on the study the message names; how many trials this task ran.

    A message that does not parse, or names a job, study or folds no trial can
    run on (:func:`loopml.steps.tuning.work_on_study`), is dead-lettered with
    the reason; the job it names is left alone (whoever sent it, it is not the
    job's own word).
    """
    from loopml.steps.tuning import work_on_study

    try:
        message = parse_message(TrialMessage, args, kwargs)
    except MessageError as error:
        log.error("dead-lettering a trial task: %s", error)
        raise Reject(str(error), requeue=False) from error
    try:
        return work_on_study(settings, message.job_id, message.estimator)
    except MessageError as error:  # a study or job only a forged or stale message names
        log.error("dead-lettering trial task %s: %s", message.ticket, error)
        raise Reject(str(error), requeue=False) from error


def _failure(cause: BaseException, text: str) -> tuple[str, str]:
    if isinstance(cause, JobCancelledError):
        return Status.CANCELLED, str(cause)
    if _timed_out(cause):
        return Status.FAILED, "stopped: the job ran past LOOPML_TRAINING_TIME_LIMIT"
    return Status.FAILED, text


def _timed_out(error: BaseException | None) -> bool:
    """The soft time limit, even when a library caught it and raised its own error.

    MLflow, for one, turns whatever interrupts a tracking call into an
    ``MlflowException`` that keeps only the message.
    """
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, SoftTimeLimitExceeded) or "SoftTimeLimitExceeded" in str(error):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def _close_run(settings: Settings, run_id: str, error: str) -> None:
    """Mark a run failed when the job stopped between steps (outside the engine's bookkeeping)."""
    from loopml.store.runs import RunStore

    _end_active_mlflow_run(settings)
    store = RunStore(settings.database)
    try:
        if store.get_run(run_id).status == Status.RUNNING:
            store.finish_run(run_id, Status.FAILED, error=error)
    except RunNotFoundError:
        pass
    finally:
        store.close()


def _end_active_mlflow_run(settings: Settings) -> None:
    """End a pipeline's MLflow run left open in this process by a job stopped between steps.

    Pool processes are reused; a run left active would make the next job's
    ``start_run`` fail.
    """
    from loopml.registry.tracking import use_tracking

    mlflow = use_tracking(settings)
    while mlflow.active_run() is not None:
        mlflow.end_run(status="KILLED")


_logs: dict[str, Any] = {}
_logs_lock = threading.Lock()


def _job_store(settings: Settings) -> JobStore:
    """One jobs table handle per worker process: batches come fast, opening a store is not free."""
    with _logs_lock:
        key = f"jobs:{settings.database}"
        found = _logs.get(key)
        if found is None:
            found = _logs[key] = JobStore(settings.database)
        return found


def _batch_log(settings: Settings) -> Any:
    """One batch log (one connection pool) per worker process."""
    from loopml.store.batchlog import BatchLog, root_of
    from loopml.store.db import connect

    key = f"batch:{settings.database}"
    with _logs_lock:
        found = _logs.get(key)
        if found is None:
            engine = connect(settings.database)
            found = _logs[key] = BatchLog(engine, root_of(settings.artifacts, settings.home))
        return found


def run_batch(
    settings: Settings, topology: Topology, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Score the batch in the message and log every prediction; how many rows."""
    import pandas as pd

    from loopml.batch import ModelRef, load_model, score_and_log
    from loopml.batch.files import read_range

    job_id = job_id_of(kwargs)
    jobs = _job_store(settings)
    try:
        message = parse_message(BatchMessage, args, kwargs)
        if message.source is not None:
            frame = read_range(message.source.uri, message.source.start, message.source.rows)
            frame = frame[message.columns]
        else:
            frame = pd.DataFrame(message.rows, columns=message.columns)
    except (MessageError, ValueError, KeyError, DataError) as error:
        raise _dead_letter(jobs, _known(jobs, job_id), str(error)) from error
    if job_id is not None:
        job = jobs.find(job_id)
        if job is not None and job.status in (Status.FAILED, Status.CANCELLED, Status.REJECTED):
            return {"batch_id": message.batch_id, "status": job.status}
    try:
        model = load_model(settings, ModelRef.parse(message.model))
    except (ModelNotFoundError, ModelReferenceError, UntrustedModelError, ModelLoadError) as error:
        raise _dead_letter(jobs, _known(jobs, job_id), str(error)) from error
    try:
        score_and_log(model, frame, message.batch_id, _batch_log(settings))
    except SkewError as error:  # schema skew: nothing of the batch was scored or written
        raise _dead_letter(jobs, _known(jobs, job_id), str(error)) from error
    except (KeyError, ValueError, TypeError) as error:  # rows the model cannot score
        text = f"batch {message.batch_id}: the model cannot score these rows: {error}"
        raise _dead_letter(jobs, _known(jobs, job_id), text) from error
    return {"batch_id": message.batch_id, "rows": len(frame), "model_version": model.version}


def _known(jobs: JobStore, job_id: str | None) -> str | None:
    """``job_id`` when that job is recorded; batch messages may come without a job row."""
    if job_id is None:
        return None
    return job_id if jobs.find(job_id) is not None else None


__all__ = ["BATCH", "register", "run_batch", "run_training_job"]
