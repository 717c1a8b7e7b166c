"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file in ``$LOOPML_HOME``.

Chosen over kombu's filesystem transport because several processes (a
submitting CLI, workers with several pool processes) share it safely: each
receive runs in a ``BEGIN IMMEDIATE`` transaction, so SQLite's write lock
makes sure one message goes to one consumer. It polls, so this subclass
polls faster than kombu's one second. Delivery is at most once: a message
being worked on is held by its worker, so a worker killed mid-job loses the
message (the job row still shows it running). That fits a laptop; use
RabbitMQ for anything that must survive a crash.

kombu's virtual transports have no dead-letter exchange: a rejected message
is simply dropped. This one gives the embedded broker the same contract as
RabbitMQ's queues (``Topology.dead_letters``):

- a message rejected without requeue moves to the dead-letter queue (named by
  the transport option ``loopml_dead_letters``), as RabbitMQ's
  ``x-dead-letter-exchange`` does;
- a row whose stored envelope is not kombu's (not JSON, not an object, no
  delivery tag, headers that are not a table) moves there too, instead of
  raising inside kombu's receive loop and stopping the worker;
- a message put back after its consumer went away is marked ``redelivered``
  in its delivery info, as AMQP does, so the admission check can count
  deliveries (:mod:`loopml.queue.admission`);
- a ``compression`` header is set aside instead of decompressing the body
  (see :mod:`loopml.queue.transport`).
"""

from __future__ import annotations

import json
import logging
from queue import Empty
from typing import Any

from kombu.transport import sqlalchemy, virtual
from sqlalchemy import create_engine, text

from loopml.queue.transport import set_aside_compression

POLLING_INTERVAL = 0.2
REASON_HEADER = "x-loopml-reason"

# transport options that are not create_engine's: kombu's own list, plus the channel's
_NOT_ENGINE = frozenset(
    {
        "queue_tablename",
        "message_tablename",
        "callback",
        "errback",
        "max_retries",
        "interval_start",
        "interval_step",
        "interval_max",
        "retry_errors",
        "loopml_dead_letters",
        "deadletter_queue",
        "body_encoding",
        "polling_interval",
    }
)
log = logging.getLogger(__name__)
_Channel: Any = sqlalchemy.Channel
_VirtualMessage: Any = virtual.Message
_Base: Any = sqlalchemy.Transport


def envelope_problem(payload: Any) -> str | None:
    """What makes ``payload`` (a stored row, decoded) unusable as a kombu message, if anything."""
    if not isinstance(payload, dict):
        return f"the stored message is {type(payload).__name__}, not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "the stored message has no properties object"
    if not isinstance(properties.get("delivery_tag"), str | int):
        return "the stored message has no delivery tag"
    if not isinstance(properties.get("delivery_info", {}), dict):
        return "the stored message's delivery info is not an object"
    if not isinstance(payload.get("headers") or {}, dict):
        return "the stored message's headers are not an object"
    if not isinstance(payload.get("body"), str | None):
        return "the stored message's body is not text"
    encoding = properties.get("body_encoding")
    if encoding is None or not payload.get("body"):
        return None
    codec: Any = virtual.Channel.codecs.get(encoding)
    if codec is None:
        return f"the stored message's body encoding {encoding!r} is unknown"
    try:
        codec.decode(payload["body"])
    except (ValueError, TypeError) as error:
        return f"the stored message's body is not valid {encoding}: {error}"
    return None


class Message(_VirtualMessage):  # type: ignore[misc]
    """A virtual-transport message whose body is never decompressed before it is checked."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        self.loopml_problem: str | None = None
        payload["headers"], self.loopml_compression = set_aside_compression(
            payload.get("headers") or {}
        )
        super().__init__(payload, channel=channel, **kwargs)


class Channel(_Channel):  # type: ignore[misc]
    """The SQLAlchemy channel with a dead-letter queue and checked envelopes."""

    Message = Message
    loopml_dead_letters: str | None = None
    from_transport_options = (*_Channel.from_transport_options, "loopml_dead_letters")

    def _engine_from_config(self) -> Any:
        """The engine; kombu would pass the channel's own options to ``create_engine`` too."""
        client = self.connection.client
        options = {k: v for k, v in client.transport_options.items() if k not in _NOT_ENGINE}
        return create_engine(client.hostname, **options)

    def _get(self, queue: str) -> Any:
        """The next message of ``queue``; rows that are not kombu envelopes go to dead letters."""
        while True:
            raw, row = self._take(queue)
            try:
                payload = json.loads(raw)
                problem = envelope_problem(payload)
            except (ValueError, RecursionError) as error:
                payload, problem = None, f"the stored message is not JSON: {error}"
            if problem is None:
                return payload
            log.error("embedded broker: moving a message of %s to dead letters: %s", queue, problem)
            self._move_to_dead_letters(row, problem)

    def _take(self, queue: str) -> tuple[str, Any]:
        """Hide the oldest visible row of ``queue`` (kombu's receive); its text and the row."""
        obj = self._get_or_create(queue)
        if self.session.bind.name == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            row = (
                self.session.query(self.message_cls)
                .with_for_update()
                .filter(self.message_cls.queue_id == obj.id)
                .filter(self.message_cls.visible != False)  # noqa: E712 (SQL, as kombu's)
                .order_by(self.message_cls.sent_at)
                .order_by(self.message_cls.id)
                .limit(1)
                .first()
            )
            if row is None:
                raise Empty()
            row.visible = False
            payload = row.payload
            return (
                payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            ), row
        finally:
            self.session.commit()

    def _move_to_dead_letters(self, row: Any, problem: str) -> None:
        """Hand the row itself to the dead-letter queue, untouched, or leave it hidden."""
        if not self.loopml_dead_letters:
            return
        target = self._get_or_create(self.loopml_dead_letters)
        row.queue_id = target.id
        row.visible = True
        self.session.commit()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """Reject without requeue moves the message to the dead-letter queue, as RabbitMQ does."""
        if not requeue and self.loopml_dead_letters:
            message = self.qos.get(delivery_tag)
            payload = message.serializable()
            headers = dict(payload.get("headers") or {})
            headers.setdefault(REASON_HEADER, "rejected without requeue")
            if getattr(message, "loopml_compression", None):
                headers["compression"] = message.loopml_compression
            payload["headers"] = headers
            self._put(self.loopml_dead_letters, payload)
        super().basic_reject(delivery_tag, requeue=requeue)

    def _restore(self, message: Any) -> None:
        """Put a message back for another consumer, marked redelivered (as AMQP does)."""
        delivery_info = message.delivery_info
        if isinstance(delivery_info, dict):
            delivery_info["redelivered"] = True
        super()._restore(message)


class Transport(_Base):  # type: ignore[misc]
    """kombu's SQLAlchemy transport, polling every 0.2 s, with :class:`Channel`."""

    Channel = Channel
    polling_interval = POLLING_INTERVAL
