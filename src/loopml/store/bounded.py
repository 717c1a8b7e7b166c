"""Bounded database calls: a store that refuses, hangs or blackholes costs seconds, not forever.

Three layers, because each covers a failure the others miss:

- libpq options in the URL: ``connect_timeout`` (connecting, including the
  start-up exchange), ``statement_timeout`` (a server that is slow or waits on a
  lock), TCP keepalives and ``tcp_user_timeout`` (a peer whose packets vanish),
  and ``idle_in_transaction_session_timeout`` on the server's side: when the
  network hangs after an INSERT reached the server but before its COMMIT did,
  the server would otherwise hold that open transaction, and the row locks
  on its prediction ids, until its own TCP keepalive gives up (two hours by
  default). Every other writer of the same ids (the journal shipper of the
  next process) would wait on those locks all that time;
- a watchdog that shuts the socket of a call still running after the bound:
  a proxy or half-dead server that accepts bytes and never answers is not
  caught by TCP at all, and psycopg has no client-side query timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def with_timeouts(url: str, seconds: float) -> str:
    """``url`` with connect, statement and socket timeouts of ``seconds`` (PostgreSQL only)."""
    if not url.startswith(("postgresql", "postgres:")):
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    milliseconds = str(max(int(seconds * 1000), 1))
    query.setdefault("connect_timeout", str(max(int(seconds), 1)))
    query.setdefault("keepalives", "1")
    query.setdefault("keepalives_idle", str(max(int(seconds), 1)))
    query.setdefault("keepalives_interval", "1")
    query.setdefault("keepalives_count", "3")
    query.setdefault("tcp_user_timeout", milliseconds)
    options = query.get("options", "")
    if "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={milliseconds}".strip()
    if "idle_in_transaction_session_timeout" not in options:
        # twice the bound, like the watchdog: our transactions send their statements back
        # to back, so only a client that is gone (or cut off) leaves one idle this long
        idle = str(max(int(seconds * 2000), 1))
        options = f"{options} -c idle_in_transaction_session_timeout={idle}"
    query["options"] = options
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.contextmanager
def bounded(engine: Engine, seconds: float | None) -> Iterator[sa.Connection]:
    """A connection in a transaction; with ``seconds``, its socket is shut if the block overruns.

    A shut socket makes the driver raise (an ``OperationalError``) in the
    thread that waits on it; the connection is then discarded.
    """
    if seconds is None or engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            yield connection
        return
    # Connecting is bounded by libpq's connect_timeout. The watchdog then covers the
    # transaction through its COMMIT (or ROLLBACK): a server that reads the COMMIT and never
    # answers is caught by neither statement_timeout (the server never saw it) nor the TCP
    # timeouts (the bytes were acknowledged), so the commit must be inside the watch too.
    with engine.connect() as connection:
        watchdog = _Watchdog(connection, seconds * 2)
        try:
            with connection.begin():
                yield connection
        finally:
            watchdog.disarm()


class _Watchdog:
    def __init__(self, connection: sa.Connection, seconds: float) -> None:
        self._fd = _socket_of(connection)
        self._lock = threading.Lock()
        self._armed = True
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if not self._armed or self._fd is None:
                return
            with contextlib.suppress(OSError):
                # shutdown acts on the socket, not the descriptor: a duplicate is enough,
                # and the driver's own descriptor is never closed under it
                duplicate = socket.socket(fileno=os.dup(self._fd))
                try:
                    duplicate.shutdown(socket.SHUT_RDWR)
                finally:
                    duplicate.close()


def _socket_of(connection: sa.Connection) -> int | None:
    driver: Any = connection.connection.driver_connection
    try:
        return int(driver.pgconn.socket)
    except (AttributeError, TypeError, ValueError, OSError):
        return None
