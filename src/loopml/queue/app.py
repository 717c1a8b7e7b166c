"""The Celery app: the broker from settings, delivery guarantees, the two tasks.

Guarantees, and why each is set:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only
  when its job ended, so a worker that dies takes nothing with it; the broker
  hands the job to another worker, which resumes it from the last finished step.
- ``worker_prefetch_multiplier=1``: a worker holds one job per free process, so
  a long training job never sits behind another on a busy worker.
- ``worker_cancel_long_running_tasks_on_connection_loss``: when the connection
  drops, RabbitMQ requeues the unacknowledged job; stopping the local copy
  avoids two workers running the same job.
- persistent messages on durable (quorum) queues, publisher confirms.
- soft and hard time limits below the queue's ``x-consumer-timeout``, so the
  broker never takes a long job back while it still runs.
- no result backend: status and results live in the metadata store's jobs table.
- every delivery is checked before Celery parses it, and whatever is not a
  well-formed loopml task is dead-lettered with its reason
  (:mod:`loopml.queue.consumer`); only JSON is ever deserialized.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from loopml.core.settings import Settings
from loopml.queue.topology import BATCH_JOB_TASK, SCORE_TASK, TRAIN_TASK, TUNE_TASK, Topology


def make_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``: RabbitMQ when ``broker_url`` is set, else embedded."""
    topology = Topology.from_settings(settings)
    if not settings.broker_url:
        settings.ensure_home()
    if topology.amqp:
        app = Celery("loopml", broker=settings.broker, set_as_current=False)
        secure = settings.broker.startswith("amqps://")
        app.conf.broker_transport = (
            f"loopml.queue.transport:{'SSLTransport' if secure else 'Transport'}"
        )
        transport_options: dict[str, Any] = {"confirm_publish": True}
    else:
        app = Celery("loopml", broker=settings.broker.removeprefix("sqla+"), set_as_current=False)
        app.conf.broker_transport = "loopml.queue.embedded:Transport"
        transport_options = {
            "connect_args": {"timeout": 30},
            "loopml_dead_letters": topology.dead_letters,
            "deadletter_queue": topology.dead_letters,
        }
    app.conf.update(
        task_queues=topology.work_queues(),
        task_default_queue=topology.training,
        task_routes={
            TRAIN_TASK: {"queue": topology.training},
            TUNE_TASK: {"queue": topology.training},
            BATCH_JOB_TASK: {"queue": topology.training},
            SCORE_TASK: {"queue": topology.inference},
        },
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_default_delivery_mode="persistent",
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_detect_quorum_queues=True,
        worker_consumer="loopml.queue.consumer:Consumer",
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_heartbeat=30,
        broker_transport_options=transport_options,
    )
    app.loopml_settings = settings
    app.loopml_topology = topology
    from loopml.queue import tasks

    tasks.register(app, settings, topology)
    return app


def declare_dead_letters(app: Celery) -> None:
    """Declare the dead-letter exchange and queue (RabbitMQ only; idempotent)."""
    topology: Topology = app.loopml_topology
    if not topology.amqp:
        return
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        queues: list[Any] = [topology.dead_letter_queue(), *topology.work_queues()]
        for queue in queues:
            queue.bind(channel).declare()
