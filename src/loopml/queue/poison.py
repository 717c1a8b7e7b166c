"""Dead-lettering a message no worker will act on: recorded, with its reason, never retried.

The message goes to the dead-letter exchange as it came (body, content type,
headers) plus headers that say why, from where and by whom
(``x-loopml-reason``, ``x-loopml-queue``, ``x-loopml-rejected-by``), with a
confirmed publish; only then is the original acknowledged. If that publish
fails, the original is rejected without requeue instead, which RabbitMQ (and
the embedded broker, :mod:`loopml.queue.embedded`) dead-letters natively: the
message can land in the dead-letter queue twice if the worker dies between
the two steps, but it is never lost and never comes back to a worker.

The job the message names (kwargs ``job_id``, the ``id`` header or the
correlation id, see :mod:`loopml.queue.admission`) gets a job row with status
``rejected`` and the reason, created when no client recorded it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from loopml.core.status import Status
from loopml.queue.admission import DELIVERIES_HEADER, Verdict
from loopml.queue.topology import Topology
from loopml.store.jobs import JobStore

log = logging.getLogger(__name__)
REASON_HEADER = "x-loopml-reason"
QUEUE_HEADER = "x-loopml-queue"
WORKER_HEADER = "x-loopml-rejected-by"
_REASON_CHARS = 2000
_COPIED_PROPERTIES = ("correlation_id", "message_id", "app_id", "type", "reply_to")


class Recorder:
    """Writes rejections to the jobs table; one store per worker process, opened on first use."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._jobs: JobStore | None = None
        self._lock = threading.Lock()

    def jobs(self) -> JobStore:
        with self._lock:
            if self._jobs is None:
                self._jobs = JobStore(self.database)
            return self._jobs

    def record(self, verdict: Verdict, reason: str, queue: str, worker: str) -> None:
        """Mark the job ``verdict`` names rejected (or failed: ``status``); never raises."""
        if verdict.job_id is None:
            return
        try:
            self.jobs().reject(
                verdict.job_id,
                kind=verdict.kind,
                queue=queue,
                reason=reason,
                details={"task": verdict.task, "worker": worker, "queue": queue},
            )
        except Exception:  # the message is dead-lettered either way, with its reason
            log.exception("could not record the rejection of job %s", verdict.job_id)

    def fail(self, job_id: str | None, reason: str) -> None:
        """Mark a job that was accepted but could not finish failed; never raises."""
        if job_id is None:
            return
        try:
            jobs = self.jobs()
            if jobs.find(job_id) is not None:
                jobs.finish(job_id, Status.FAILED, error=f"dead-lettered: {reason}")
        except Exception:
            log.exception("could not record the failure of job %s", job_id)


def queue_of(message: Any) -> str:
    info = getattr(message, "delivery_info", None)
    return str(info.get("routing_key") or "") if isinstance(info, dict) else ""


def dead_letter(app: Any, message: Any, reason: str, *, worker: str) -> None:
    """Send ``message`` to the dead-letter queue with ``reason``, then settle the original."""
    reason = reason[:_REASON_CHARS]
    log.error("dead-lettering a message from %s: %s", queue_of(message) or "?", reason)
    topology: Topology = app.loopml_topology
    headers = _headers(message)
    headers.update({REASON_HEADER: reason, QUEUE_HEADER: queue_of(message), WORKER_HEADER: worker})
    try:
        _publish(app, topology, message, headers, topology.dead_letters, dead=True)
    except Exception:
        log.exception("could not publish the dead letter; rejecting the message instead")
        _settle(message, reject=True)
        return
    _settle(message, reject=False)


def republish(app: Any, message: Any, deliveries: int) -> None:
    """Put a redelivered message back on its queue carrying its delivery count, then ack it.

    Classic queues count nothing, so the count travels in the message
    (``x-loopml-deliveries``); the admission check refuses it past the limit.
    """
    topology: Topology = app.loopml_topology
    headers = _headers(message)
    headers[DELIVERIES_HEADER] = deliveries
    queue = queue_of(message)
    if queue not in (topology.training, topology.inference):
        raise ValueError(f"redelivered message from unknown queue {queue!r}")
    _publish(app, topology, message, headers, queue, dead=False)
    _settle(message, reject=False)


def _headers(message: Any) -> dict[str, Any]:
    headers = getattr(message, "headers", None)
    copied = dict(headers) if isinstance(headers, dict) else {}
    compression = getattr(message, "loopml_compression", None)
    if compression:
        copied["compression"] = compression
    return copied


def _publish(
    app: Any, topology: Topology, message: Any, headers: dict[str, Any], queue: str, *, dead: bool
) -> None:
    content_type = message.content_type if isinstance(message.content_type, str) else None
    encoding = message.content_encoding if isinstance(message.content_encoding, str) else None
    body = _raw(message.body, encoding)
    properties = getattr(message, "properties", None) or {}
    extra = {key: properties[key] for key in _COPIED_PROPERTIES if properties.get(key)}
    target = topology.dead_letter_queue() if dead else _work_queue(topology, queue)
    # kombu's virtual transports drop what is sent to a fanout exchange; the embedded
    # broker takes the queue name on the default exchange (RabbitMQ's exchange is bound)
    with app.producer_pool.acquire(block=True, timeout=30) as producer:
        producer.publish(
            body,
            exchange=target.exchange if topology.amqp else "",
            routing_key=queue,
            declare=[target],
            content_type=content_type or "application/octet-stream",
            content_encoding=encoding or "binary",
            headers=headers,
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            **extra,
        )


def _raw(body: Any, encoding: str | None) -> bytes:
    """The body as it was sent: py-amqp hands over text bodies decoded with their encoding."""
    if isinstance(body, str):
        try:
            return body.encode(encoding or "utf-8")
        except (LookupError, UnicodeError):
            return body.encode("utf-8", "surrogateescape")
    return bytes(body or b"")


def _work_queue(topology: Topology, name: str) -> Any:
    return next(queue for queue in topology.work_queues() if queue.name == name)


def _settle(message: Any, *, reject: bool) -> None:
    """Ack (or reject without requeue) ``message``, a kombu message or a raw py-amqp one."""
    if getattr(message, "acknowledged", False):
        return
    if hasattr(message, "reject") and hasattr(message, "ack"):
        message.reject(requeue=False) if reject else message.ack()
        return
    channel, tag = message.channel, message.delivery_tag  # a raw py-amqp message
    channel.basic_reject(tag, requeue=False) if reject else channel.basic_ack(tag)


__all__ = ["Recorder", "dead_letter", "republish"]
