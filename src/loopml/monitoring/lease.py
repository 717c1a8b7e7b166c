"""Holding a model's monitor lease while this process lives (see :mod:`loopml.store.leases`).

:class:`LeaseKeeper` takes the lease before each pass and renews it from a background
thread every third of its time to live, so a pass longer than the lease keeps it. If a
renewal fails (the database is down, or another replica took the lease after this one
stalled), the keeper stops claiming to hold it and the next pass first has to win it back.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

from loopml.store.leases import FAILED, SUCCEEDED, LeaseStore

log = logging.getLogger("loopml.monitoring.lease")
T = TypeVar("T")


def holder_id() -> str:
    """Who holds a lease: host, process and a nonce (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """One process's claim on one model's monitor lease."""

    def __init__(self, store: LeaseStore, model_name: str, ttl_s: float) -> None:
        self.store = store
        self.model_name = model_name
        self.ttl = timedelta(seconds=ttl_s)
        self.holder = holder_id()
        self._held = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def acquire(self) -> bool:
        """Take or renew the lease now; start renewing it in the background once held."""
        if self.store.acquire(self.model_name, self.holder, self.ttl):
            self._held.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._renew, name=f"lease-{self.model_name}", daemon=True
                )
                self._thread.start()
            return True
        self._held.clear()
        return False

    def run_pass(self, work: Callable[[], T]) -> T:
        """Run ``work`` as a recorded pass of this holder (call only while holding)."""
        pass_id = self.store.start_pass(self.model_name, self.holder)
        status = FAILED
        try:
            result = work()
            status = SUCCEEDED
            return result
        finally:
            self.store.finish_pass(pass_id, status)

    def release(self) -> None:
        """Stop renewing and hand the lease back, so another replica may take it at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._held.is_set():
            self._held.clear()
            try:
                self.store.release(self.model_name, self.holder)
            except Exception:  # it expires on its own; never hide the caller's own error
                log.warning("could not release the monitor lease of %s", self.model_name)

    def _renew(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            if not self._held.is_set():
                continue
            try:
                kept = self.store.acquire(self.model_name, self.holder, self.ttl)
            except Exception as exc:
                log.warning("renewing the monitor lease of %s failed: %s", self.model_name, exc)
                kept = False
            if not kept:
                self._held.clear()
                log.warning(
                    "lost the monitor lease of %s; the next pass waits to win it back",
                    self.model_name,
                )


@contextmanager
def monitor_lease(database_url: str, model_name: str, ttl_s: float) -> Iterator[LeaseKeeper]:
    """A keeper for ``model_name``'s lease, released (and its store closed) on exit."""
    store = LeaseStore.open(database_url)
    keeper = LeaseKeeper(store, model_name, ttl_s)
    try:
        yield keeper
    finally:
        keeper.release()
        store.close()
