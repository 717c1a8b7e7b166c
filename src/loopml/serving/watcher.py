"""Continuous delivery: follow the registry alias and swap the served model without a pause.

The watcher polls ``NAME@alias``; when it points somewhere new it loads and
warms that version on its own thread while the old one keeps serving, then
replaces the slot's reference in one assignment. Requests read the slot once,
so those in flight finish on the model they started with. A version that
fails to load leaves the old one serving, is reported on ``/metadata`` and in
the log, and is retried with a growing pause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loopml.core.settings import Settings
from loopml.serving.model import ModelRef, ServedModel, load_model

log = logging.getLogger(__name__)


class ModelSlot:
    """The model serving right now, and what happened to the last attempt to replace it."""

    def __init__(self, model: ServedModel) -> None:
        self.current = model
        self.swaps = 0
        self.load_failures = 0
        self.last_load_error: dict[str, Any] | None = None
        self.last_check_at: datetime | None = None
        self.last_check_error: str | None = None

    def swap(self, model: ServedModel) -> ServedModel:
        old, self.current = self.current, model
        self.swaps += 1
        self.last_load_error = None
        return old


class ModelWatcher:
    """A daemon thread that polls the alias every ``interval_s`` seconds."""

    def __init__(
        self,
        settings: Settings,
        ref: ModelRef,
        slot: ModelSlot,
        interval_s: float,
        on_swap: Callable[[ServedModel, ServedModel], None] | None = None,
        load: Callable[[Settings, ModelRef, str], ServedModel] = load_model,
    ) -> None:
        self.settings = settings
        self.ref = ref
        self.slot = slot
        self.interval_s = interval_s
        self._on_swap = on_swap
        self._load = load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: dict[str, float] = {}  # version -> monotonic time of the next retry
        self._backoff: dict[str, float] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loopml-model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def status(self) -> dict[str, Any]:
        return {
            "alias": self.ref.alias,
            "interval_s": self.interval_s,
            "last_check_at": _iso(self.slot.last_check_at),
            "last_check_error": self.slot.last_check_error,
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check_once()

    def check_once(self) -> bool:
        """Look at the alias once; load and swap if it moved. ``True`` when a swap happened."""
        self.slot.last_check_at = datetime.now(UTC)
        try:
            version = self.ref.resolve(self.settings)
        except Exception as exc:
            if self.slot.last_check_error is None:
                log.warning("cannot check %s in the registry: %s", self.ref, exc)
            self.slot.last_check_error = str(exc)
            return False
        self.slot.last_check_error = None
        if version == self.slot.current.version:
            return False
        if time.monotonic() < self._failed.get(version, 0.0):
            return False
        log.info("%s moved to version %s; loading it", self.ref, version)
        try:
            model = self._load(self.settings, self.ref, version)
        except Exception as exc:
            pause = min(self._backoff.get(version, self.interval_s) * 2, 600.0)
            self._backoff[version] = pause
            self._failed[version] = time.monotonic() + pause
            self.slot.load_failures += 1
            self.slot.last_load_error = {
                "version": version,
                "error": f"{type(exc).__name__}: {exc}",
                "at": datetime.now(UTC).isoformat(),
                "still_serving": self.slot.current.version,
                "retry_in_s": pause,
            }
            log.error(
                "loading %s version %s failed, still serving version %s: %s",
                self.ref.name,
                version,
                self.slot.current.version,
                exc,
            )
            return False
        old = self.slot.swap(model)
        self._failed.pop(version, None)
        self._backoff.pop(version, None)
        log.info(  # a hot swap is the loop working, not a problem
            "now serving %s version %s (was %s; loaded in %.2fs)",
            self.ref.name,
            model.version,
            old.version,
            model.load_seconds,
        )
        if self._on_swap is not None:
            self._on_swap(old, model)
        return True


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
