"""Batch scoring jobs asked for over HTTP: queued by the API, run by a training-queue worker.

``POST /batches`` checks the order (:mod:`loopml.batch.orders`), records a
``batch`` job and publishes one ``loopml.batch_job`` task; the API answers at
once. A worker takes it, checks the order again, pins the model to one
version (kept in the job's details, so a redelivery scores with the same
version even if the alias moved), and scores through
:func:`loopml.batch.engines.get_engine`, the function ``loopml predict-batch``
uses. Progress is the job's ``steps_done``/``steps_total`` in chunks; rows
scored are the job's batch-log segments.

The task runs on the training queue because an engine may itself wait on the
inference queue (``queue`` publishes chunks there): a worker running the job
must not be the only one consuming the chunks.

A redelivered job scores again under the same job id: chunks are logged by
(job, chunk), so the log keeps each prediction id once, and the output file
is replaced whole.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from loopml.batch.orders import BatchOrder, check_order
from loopml.core.access import HTTP
from loopml.core.errors import BrokerError, JobCancelledError, LoopmlError
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue.messages import BatchJobMessage
from loopml.queue.submit import new_job_id, publish
from loopml.queue.topology import BATCH_JOB_TASK, Topology
from loopml.store.jobs import BATCH, JobStore, JobView

log = logging.getLogger(__name__)
SCORING = "scoring"


def submit_batch(app: Celery, settings: Settings, order: BatchOrder) -> JobView:
    """Record a queued batch job for ``order`` (already checked) and publish it; the job."""
    topology: Topology = app.loopml_topology
    job_id = new_job_id()
    jobs = JobStore(settings.database)
    try:
        job = jobs.create(
            job_id,
            kind=BATCH,
            queue=topology.training,
            model_name=order.model,
            details={"origin": HTTP, "batch": order.as_dict()},
        )
        try:
            publish(app, BATCH_JOB_TASK, job_id, {"job_id": job_id, **order.as_dict()})
        except BrokerError as error:
            jobs.finish(job_id, Status.FAILED, error=f"could not be queued: {error}")
            raise
        return job
    finally:
        jobs.close()


def run_batch_job(
    settings: Settings,
    topology: Topology,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    worker: str,
) -> dict[str, Any]:
    """Run (or run again) the batch job in the message; its final status."""
    from loopml.queue.tasks import _dead_letter, begin_attempt

    jobs = JobStore(settings.database)
    try:
        started = begin_attempt(
            jobs,
            BatchJobMessage,
            args,
            kwargs,
            settings=settings,
            worker=worker,
            record=lambda job_id: jobs.create(job_id, kind=BATCH, queue=topology.training),
        )
        if isinstance(started, dict):
            return started
        message, before = started.message, started.before
        try:  # again here: the message may not come from the API, the disk may have changed
            order = check_order(
                settings,
                model=message.model,
                input=message.input,
                output=message.output,
                engine=message.engine,
                batch_rows=message.batch_rows,
                by_reference=message.by_reference,
            )
        except LoopmlError as error:
            raise _dead_letter(jobs, message.job_id, str(error)) from error
        return _score(settings, jobs, message.job_id, order, before.details)
    finally:
        jobs.close()


def _score(
    settings: Settings, jobs: JobStore, job_id: str, order: BatchOrder, details: dict[str, Any]
) -> dict[str, Any]:
    from celery.exceptions import SoftTimeLimitExceeded

    from loopml.batch.engines import BatchRequest, get_engine
    from loopml.batch.models import ModelRef

    try:
        engine = get_engine(order.engine)
        version = details.get("version")
        if isinstance(version, str):  # pinned by an earlier delivery: the same version again
            pinned = ModelRef(ModelRef.parse(order.model).name, version=version)
        else:
            pinned = ModelRef.parse(order.model).pin(settings)
            jobs.merge_details(job_id, {"version": pinned.version})
        jobs.progress(job_id, current_step=SCORING, steps_done=0)
        request = BatchRequest(
            settings=settings,
            model=pinned,
            input=order.input,
            output=order.output,
            batch_rows=order.batch_rows,
            job_id=job_id,
            options={"by_reference": order.by_reference},
            quote_values=False,
        )
        result = engine.score(request, _progress(jobs, job_id))
    except JobCancelledError as error:
        jobs.finish(job_id, Status.CANCELLED, error=str(error))
        return {"job_id": job_id, "status": Status.CANCELLED}
    except SoftTimeLimitExceeded:
        text = "stopped: the job ran past LOOPML_TRAINING_TIME_LIMIT"
        jobs.finish(job_id, Status.FAILED, error=text)
        return {"job_id": job_id, "status": Status.FAILED}
    except LoopmlError as error:  # loopml's own words: paths, columns and types, no values
        jobs.finish(job_id, Status.FAILED, error=" ".join(str(error).split()))
        return {"job_id": job_id, "status": Status.FAILED}
    except Exception as error:  # whatever it is, the remote client reads its type only
        # The model, a library or a plugin engine refused the rows, and its message may quote
        # a value of the file ("could not convert string to float: '...'"): the job that a
        # remote client reads says what failed; the value stays in the worker's log.
        log.error("batch job %s failed: %s: %s", job_id, type(error).__name__, error)
        text = (
            f"{order.input}: {order.model} cannot score these rows ({type(error).__name__}; "
            "the worker's log has the details)"
        )
        jobs.finish(job_id, Status.FAILED, error=text)
        return {"job_id": job_id, "status": Status.FAILED}
    jobs.merge_details(
        job_id,
        {
            "result": {
                "rows": result.rows,
                "chunks": result.chunks,
                "seconds": round(result.seconds, 3),
                "version": result.version,
                "output": result.output,
            }
        },
    )
    jobs.progress(job_id, steps_done=result.chunks, steps_total=result.chunks)
    jobs.finish(job_id, Status.SUCCEEDED)
    return {"job_id": job_id, "status": Status.SUCCEEDED, "rows": result.rows}


def _progress(jobs: JobStore, job_id: str) -> Any:
    """The engine's ``progress(done, total)``: recorded on the job; a cancel stops the job."""

    def progress(done: int, total: int | None) -> None:
        if jobs.cancel_requested(job_id):
            jobs.finish(job_id, Status.CANCELLED, error=f"cancelled after {done} chunks")
            raise JobCancelledError(f"batch job {job_id} cancelled after {done} chunks")
        jobs.progress(job_id, steps_done=done, steps_total=total)

    return progress
