"""Sending work: a checked spec becomes a queued job; a frame becomes batches on the queue.

The CLI (``loopml submit``, ``loopml predict-batch --queue``) and the API
(``POST /jobs``) both come here, so a spec is refused at the door with the
same errors ``loopml validate`` prints, before anything is recorded or sent.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnreachable
from kombu.utils.url import maybe_sanitize_url

from loopml.core.access import HTTP, LOCAL, DataPolicy
from loopml.core.errors import BrokerError, LoopmlError
from loopml.core.settings import Settings
from loopml.core.spec import PipelineSpec
from loopml.core.status import Status
from loopml.queue.topology import TRAIN_TASK, TRAINING_QUEUE_TASKS, Topology
from loopml.store.jobs import BATCH, TRAINING, JobStore, JobView


def new_job_id() -> str:
    return uuid.uuid4().hex


def submit_training(
    app: Celery,
    settings: Settings,
    spec: PipelineSpec,
    *,
    origin: str = LOCAL,
    smoke: bool = False,
) -> JobView:
    """Record a queued job for ``spec`` (already checked) and publish it; the job.

    ``origin`` is recorded on the job (``details.origin``): a worker holds a job
    that came over HTTP to the restricted data policy.
    """
    topology: Topology = app.loopml_topology
    job_id = new_job_id()
    details: dict[str, object] = {"origin": origin} if origin != LOCAL else {}
    if smoke:  # the worker runs it with the smoke profile (see loopml.automl.smoke)
        details["smoke"] = True
    source = str(spec.source) if spec.source is not None else None
    jobs = JobStore(settings.database)
    try:
        job = jobs.create(
            job_id,
            kind=TRAINING,
            queue=topology.training,
            spec_text=spec.text,
            spec_source=source,
            model_name=spec.experiment.model_name,
            details=details or None,
        )
        try:
            publish(
                app, TRAIN_TASK, job_id, {"job_id": job_id, "spec": spec.text, "source": source}
            )
        except BrokerError as error:
            jobs.finish(job_id, Status.FAILED, error=f"could not be queued: {error}")
            raise
        return job
    finally:
        jobs.close()


def publish(app: Celery, task: str, task_id: str, kwargs: dict[str, Any]) -> None:
    """Publish one task message (persistent, confirmed by RabbitMQ) to its queue."""
    topology: Topology = app.loopml_topology
    queue = topology.training if task in TRAINING_QUEUE_TASKS else topology.inference
    try:
        app.send_task(task, kwargs=kwargs, task_id=task_id, queue=queue, ignore_result=True)
    except (BrokerUnreachable, OSError) as error:
        where = maybe_sanitize_url(app.loopml_settings.broker)
        raise BrokerError(
            f"cannot publish to the broker at {where}: {error}. Check LOOPML_BROKER_URL and "
            "that the broker is up"
        ) from error


def submit_spec_file(
    app: Celery, settings: Settings, path: Path, *, smoke: bool = False
) -> JobView:
    """Check the spec at ``path`` like ``loopml validate`` and submit it."""
    from loopml.engine import load_spec
    from loopml.steps.registry import StepRegistry

    checked = load_spec(path, StepRegistry.with_builtins())
    return submit_training(app, settings, checked.spec, smoke=smoke)


def submit_spec_text(
    app: Celery, settings: Settings, text: str, source: str | None = None, *, smoke: bool = False
) -> JobView:
    """Check spec ``text`` that came over HTTP and submit it as such.

    Structure and vocabulary only: nothing is read here (no file, no query);
    the data it names must be allowed by the restricted data policy, which
    the worker applies again when it runs the job.
    """
    from loopml.engine import check_spec_text
    from loopml.steps.registry import StepRegistry

    checked = check_spec_text(
        text,
        StepRegistry.with_builtins(),
        source=Path(source) if source else None,
        peek_data=False,
        policy=DataPolicy.from_settings(settings, restricted=True),
    )
    return submit_training(app, settings, checked.spec, origin=HTTP, smoke=smoke)


def resume_run_on_queue(app: Celery, settings: Settings, run: Any, *, actor: str) -> JobView:
    """Queue the failed pipeline run ``run`` (a ``RunView``) to resume on a training worker.

    A training job's id is its run's id, so the worker finds the run and
    resumes it from its first unfinished step (``loopml.engine.run_job``),
    as ``loopml runs resume`` does in-process. The job row is reopened (or
    created, for a run started by ``loopml run``), keeping its origin: a spec
    that came over HTTP stays under the restricted data policy.
    """
    from loopml.store.clock import now

    if run.status not in (Status.FAILED, Status.CANCELLED):
        raise LoopmlError(
            f"run {run.id} is {run.status}; only a failed or cancelled run can be resumed"
        )
    topology: Topology = app.loopml_topology
    jobs = JobStore(settings.database)
    try:
        jobs.create(
            run.id,
            kind=TRAINING,
            queue=topology.training,
            spec_text=run.spec_text,
            spec_source=run.spec_source,
            model_name=run.model_name,
        )
        job = jobs.requeue(run.id, note={"by": actor, "at": now().isoformat()})
        if job.status != Status.QUEUED:
            raise LoopmlError(f"job {run.id} is {job.status}; it cannot be queued again now")
        try:
            publish(
                app,
                TRAIN_TASK,
                run.id,
                {"job_id": run.id, "spec": run.spec_text, "source": run.spec_source},
            )
        except BrokerError as error:
            jobs.finish(run.id, Status.FAILED, error=f"could not be queued: {error}")
            raise
        return job
    finally:
        jobs.close()


def record_batch_job(
    settings: Settings, topology: Topology, job_id: str, model: str, details: dict[str, Any]
) -> JobView:
    jobs = JobStore(settings.database)
    try:
        return jobs.create(
            job_id, kind=BATCH, queue=topology.inference, model_name=model, details=details
        )
    finally:
        jobs.close()
