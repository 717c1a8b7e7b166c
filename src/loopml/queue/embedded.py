"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file in ``$LOOPML_HOME``.

Chosen over kombu's filesystem transport because several processes (a
submitting CLI, workers with several pool processes) share it safely: each
receive runs in a ``BEGIN IMMEDIATE`` transaction, so SQLite's write lock
makes sure one message goes to one consumer. It polls, so this subclass
polls faster than kombu's one second. Delivery is at most once: a message
being worked on is held by its worker, so a worker killed mid-job loses the
message (the job row still shows it running). That fits a laptop; use
RabbitMQ for anything that must survive a crash.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import sqlalchemy

POLLING_INTERVAL = 0.2

_Base: Any = sqlalchemy.Transport


class Transport(_Base):  # type: ignore[misc]
    """kombu's SQLAlchemy transport, polling every 0.2 s."""

    polling_interval = POLLING_INTERVAL
