"""Recording a message no worker can act on, before the broker dead-letters it.

Celery's message protocol v2 carries the task id in the ``id`` header; loopml
uses the job id as the task id, so even a message whose body cannot be read
names the job that should be marked failed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from loopml.core.status import Status
from loopml.queue.topology import TRAIN_TASK
from loopml.store.jobs import TRAINING, JobStore

log = logging.getLogger(__name__)
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def record_poison(app: Any, message: Any, reason: str) -> None:
    """Mark the job named by ``message`` failed with ``reason``; never raises."""
    headers = getattr(message, "headers", None) or {}
    job_id = headers.get("id")
    log.error("dead-lettering message %r: %s", job_id, reason)
    if headers.get("task") != TRAIN_TASK or not isinstance(job_id, str) or not JOB_ID.match(job_id):
        return  # batch messages carry batch ids; their job is failed by the client's wait
    try:
        jobs = JobStore(app.loopml_settings.database)
        try:
            queue = str((getattr(message, "delivery_info", None) or {}).get("routing_key", ""))
            jobs.create(job_id, kind=TRAINING, queue=queue)
            jobs.finish(job_id, Status.FAILED, error=f"dead-lettered: {reason}")
        finally:
            jobs.close()
    except Exception:  # the message is dead-lettered either way
        log.exception("could not record the failure of job %s", job_id)
