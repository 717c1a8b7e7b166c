"""The worker's consumer: every delivery is admitted (or dead-lettered) before Celery parses it.

Celery's consumer hands each delivery to ``on_task_received``
(``Consumer.create_task_handler``), which builds a request from the raw body
in the worker's main process: any exception there other than the three it
expects stops the whole worker. :class:`Consumer` wraps that handler:

1. :func:`loopml.queue.admission.examine` checks the message as delivered; a
   refused one is dead-lettered with its reason and its job row marked
   ``rejected`` (:mod:`loopml.queue.poison`), and Celery never sees it.
2. A redelivered message (its consumer died, was killed or lost its
   connection, or its pool process was lost) is counted: past
   ``LOOPML_MAX_DELIVERIES`` it is dead-lettered and its job failed, otherwise
   it is put back carrying its count. Classic queues have no delivery limit,
   so without this a message that kills its worker would loop forever.
3. Whatever Celery's handler still raises (a case nobody foresaw) dead-letters
   the message instead of stopping the worker; connection errors still go to
   Celery, which reconnects.

Task-level refusals (a spec that does not parse, an unknown model) raise
``Reject(requeue=False)`` in the task; :class:`DeadLetteringRequest` turns that
into the same dead letter with the task's reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.exceptions import Reject
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.request import Request

from loopml.queue.admission import Verdict, examine
from loopml.queue.poison import Recorder, dead_letter, queue_of, republish
from loopml.queue.topology import BATCH_JOB_TASK, SCORE_TASK, TRAIN_TASK, TUNE_TASK

log = logging.getLogger(__name__)


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer with admission in front of task parsing.

    Celery's native delayed delivery (a tree of ``celery_delayed_*`` exchanges
    it declares for quorum queues) is left out: loopml never schedules tasks
    with an ETA, and those names would be shared by every deployment on a broker.
    """

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        default_steps = [
            step
            for step in CeleryConsumer.Blueprint.default_steps
            if "delayed_delivery" not in step
        ]

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        handler = super().create_task_handler(*args, **kwargs)
        settings = self.app.loopml_settings
        recorder = _recorder(self.app)
        limits = {
            TRAIN_TASK: float(settings.training_hard_limit),
            TUNE_TASK: float(settings.training_hard_limit),
            BATCH_JOB_TASK: float(settings.training_hard_limit),
        }
        topology = self.app.loopml_topology
        queues = {
            TRAIN_TASK: topology.training,
            SCORE_TASK: topology.inference,
            TUNE_TASK: topology.training,
            BATCH_JOB_TASK: topology.training,
        }
        broker_errors = tuple(self.connection_errors) + tuple(self.channel_errors)

        def on_task_received(message: Any) -> Any:
            try:
                verdict = examine(message, limits, queues)
            except Exception as error:  # examine never raises; this is the last guard
                verdict = Verdict(reason=f"the message could not be checked: {error!r}")
            try:
                if verdict.reason is not None:
                    return self._refuse(message, verdict, verdict.reason, recorder)
                if _redelivered(message):
                    return self._count_delivery(message, verdict, recorder)
                return handler(message)
            except broker_errors:
                raise  # Celery reconnects; the unacknowledged message comes back
            except Exception as error:
                log.exception("could not take a message; dead-lettering it")
                reason = f"the worker could not accept the task: {type(error).__name__}: {error}"
                return self._refuse(message, verdict, reason, recorder)

        return on_task_received

    def _refuse(self, message: Any, verdict: Verdict, reason: str, recorder: Recorder) -> None:
        recorder.record(verdict, reason, queue_of(message), self.hostname)
        dead_letter(self.app, message, reason, worker=self.hostname)

    def _count_delivery(self, message: Any, verdict: Verdict, recorder: Recorder) -> None:
        limit = self.app.loopml_settings.max_deliveries
        unfinished = verdict.deliveries + 1
        if unfinished >= limit:
            reason = (
                f"delivered {unfinished} times without finishing (LOOPML_MAX_DELIVERIES={limit}):"
                " each time its worker died, was killed or lost its connection"
            )
            recorder.fail(verdict.job_id, reason)
            dead_letter(self.app, message, reason, worker=self.hostname)
            return
        log.warning(
            "message %s redelivered (%d unfinished deliveries); putting it back with its count",
            verdict.job_id,
            unfinished,
        )
        republish(self.app, message, unfinished)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """kombu could not build or decompress the message: dead-letter it with the reason."""
        verdict = examine(message)
        reason = f"the message cannot be decoded: {type(exc).__name__}: {exc}"
        self._refuse(message, verdict, reason, _recorder(self.app))

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._refuse(message, examine(message), "not a task message", _recorder(self.app))

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._refuse(message, examine(message), f"unknown task: {exc}", _recorder(self.app))

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        reason = f"invalid task message: {exc}"
        self._refuse(message, examine(message), reason, _recorder(self.app))


def _recorder(app: Any) -> Recorder:
    found: Recorder | None = getattr(app, "loopml_recorder", None)
    if found is None:
        found = app.loopml_recorder = Recorder(app.loopml_settings.database)
    return found


def _redelivered(message: Any) -> bool:
    info = getattr(message, "delivery_info", None)
    return bool(isinstance(info, dict) and info.get("redelivered"))


class DeadLetteringRequest(Request):  # type: ignore[misc]
    """A request whose ``Reject(requeue=False)`` dead-letters the message with the task's reason."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, Reject) and not exc.requeue:
            self.loopml_reason = str(exc.reason)
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def reject(self, requeue: bool = False) -> None:
        if requeue or getattr(self, "acknowledged", False):
            super().reject(requeue=requeue)
            return
        reason = getattr(self, "loopml_reason", None) or "rejected by the task"
        dead_letter(self._app, self.message, reason, worker=self.hostname)
        self.acknowledged = True
        self.send_event("task-rejected", requeue=False)
