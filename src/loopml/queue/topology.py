"""Queue and exchange names and their RabbitMQ arguments: the wire contract of the workers.

Clients in other languages publish to these names (docs/workers.md), so they
are derived from settings in one place. Every work queue is durable and
dead-letters to one exchange; with RabbitMQ the queues are quorum queues by
default (replicated, and the broker itself dead-letters a message redelivered
more than ``max_deliveries`` times, even one that crashes every worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import entity

from loopml.core.settings import Settings

# kombu is typed only in part; these two are used as plain constructors.
Exchange: Any = entity.Exchange
Queue: Any = entity.Queue

TRAIN_TASK = "loopml.train"
SCORE_TASK = "loopml.score_batch"
#: Trials of a training job's tuning study, on the training queue (docs/workers.md).
TUNE_TASK = "loopml.tune_trials"
#: A whole batch scoring job asked for over HTTP (``POST /batches``), on the training queue:
#: it runs an engine, which may itself publish chunks to the inference queue.
BATCH_JOB_TASK = "loopml.batch_job"
#: Tasks that go to the training queue; every other one goes to the inference queue.
TRAINING_QUEUE_TASKS = frozenset({TRAIN_TASK, TUNE_TASK, BATCH_JOB_TASK})


@dataclass(frozen=True)
class Topology:
    """Names of the work queues and the dead-letter exchange and queue."""

    training: str
    inference: str
    dead_letters: str
    amqp: bool
    queue_type: str
    consumer_timeout_ms: int
    delivery_limit: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        prefix = settings.queue_prefix
        assert settings.consumer_timeout is not None
        return cls(
            training=f"{prefix}training",
            inference=f"{prefix}inference",
            dead_letters=f"{prefix}loopml.dead",
            amqp=settings.broker.startswith(("amqp://", "amqps://", "pyamqp://")),
            queue_type=settings.queue_type,
            consumer_timeout_ms=settings.consumer_timeout * 1000,
            delivery_limit=settings.max_deliveries,
        )

    def queue_for(self, kind: str) -> str:
        """The queue name for ``training`` or ``inference``."""
        if kind == "training":
            return self.training
        if kind == "inference":
            return self.inference
        raise ValueError(f"unknown queue kind {kind!r}; allowed: training, inference")

    def arguments(self) -> dict[str, Any]:
        """The RabbitMQ arguments of both work queues (empty for the embedded broker)."""
        if not self.amqp:
            return {}
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": self.dead_letters,
            "x-consumer-timeout": self.consumer_timeout_ms,
        }
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments

    def work_queues(self) -> list[Any]:
        """The training and inference queues, each behind a direct exchange of its own name."""
        return [
            Queue(
                name,
                Exchange(name, type="direct", durable=True),
                routing_key=name,
                durable=True,
                queue_arguments=self.arguments() or None,
            )
            for name in (self.training, self.inference)
        ]

    def dead_letter_queue(self) -> Any:
        """Where rejected messages end: a durable queue on a fanout exchange."""
        return Queue(
            self.dead_letters,
            Exchange(self.dead_letters, type="fanout", durable=True),
            durable=True,
        )
