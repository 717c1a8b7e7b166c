"""A local append-only journal of entries (JSON lines) and the thread that ships it to a store.

Why: a server answers a prediction only after the prediction is in this journal,
so an answered prediction survives a database outage, a hang and a killed
process. Each process writes its own segment files with one ``write()`` per
append (no fsync: the page cache survives a process kill). A shipper thread
seals the active segment, hands each sealed segment's entries to a sink (the
SQL store, idempotent by entry id) and deletes the segment only after the sink
returned, i.e. after the rows are committed. Nothing is ever renamed onto or
overwritten: segments are created with ``O_EXCL`` and only ever appended to or
deleted whole.

Ownership: a process holds an ``flock`` on its owner lock file for its whole
life. Segments of an owner whose lock can be taken belong to a process that is
gone; the next process that takes the lock adopts and ships them (and holds
the lock while it does, so two live processes never ship one segment at once).
A torn last line (a kill in the middle of a write) is kept aside, never fatal.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

Entry = dict[str, Any]
"""One journal line: a JSON object; ``t`` is its time (epoch seconds) when it has one."""

Sink = Callable[[list[Entry]], Sequence[Entry]]
"""Commits entries to the store (raises when it cannot); returns entries to journal again later."""


class StoreDownError(Exception):
    """The sink could not reach the store: keep the segment and retry later."""


@dataclass
class _Segment:
    path: Path
    rows: int
    oldest: float | None


@dataclass
class Backlog:
    """What is journaled and not yet shipped."""

    rows: int = 0
    segments: int = 0
    oldest: float | None = None
    """Epoch time of the oldest unshipped entry."""

    def add(self, rows: int, oldest: float | None) -> None:
        self.rows += rows
        self.segments += 1
        if oldest is not None and (self.oldest is None or oldest < self.oldest):
            self.oldest = oldest


@dataclass
class ShipReport:
    shipped: int = 0
    rejected: int = 0
    segments: int = 0
    finished: bool = True
    """False when the deadline cut the pass short or the store was down."""
    errors: list[str] = field(default_factory=list)


class Journal:
    """One process's journal: ``NAME-OWNER-SEQ.seg`` segments and a ``NAME-OWNER.lock``."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "predictions",
        roll_bytes: int = 16 << 20,
        weigh: Callable[[Entry], int] = lambda entry: 1,
    ) -> None:
        self.directory = directory
        self.weigh = weigh
        """How many rows an entry stands for (the backlog counts rows, not lines)."""
        self.name = name
        self.roll_bytes = roll_bytes
        self.owner = f"{os.getpid()}.{secrets.token_hex(4)}"
        self._pattern = re.compile(rf"^{re.escape(name)}-(\d+\.[0-9a-f]+)-(\d{{8}})\.seg$")
        self._lock = threading.Lock()
        self._owner_fd: int | None = None
        self._fd: int | None = None
        self._seq = 0
        self._active: _Segment | None = None
        self._active_bytes = 0
        self._sealed: list[_Segment] = []
        self._adopted: dict[str, int] = {}
        self._foreign: dict[Path, _Segment] = {}
        self.rejected_path = directory / f"{name}-rejected.jsonl"

    # -- writing (any thread) -----------------------------------------------------------------

    def open(self) -> Journal:
        """Create the directory and take this process's owner lock (before any segment exists)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self._lock_path(self.owner)
        temporary = final.with_name(final.name + ".tmp")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        temporary.rename(final)  # visible only once locked: a visible lock is a held one
        self._owner_fd = fd
        return self

    def append(self, data: bytes, rows: int, oldest: float | None) -> None:
        """Append whole lines in one ``write()``; when this returns a process kill loses nothing."""
        with self._lock:
            if self._fd is None or self._active_bytes >= self.roll_bytes:
                self._roll()
            assert self._fd is not None and self._active is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._active_bytes += len(data)
            self._active.rows += rows
            if self._active.oldest is None and oldest is not None:
                self._active.oldest = oldest

    def seal(self) -> None:
        """Close the active segment if it holds anything, so the shipper may take it."""
        with self._lock:
            if self._active is not None and self._active.rows:
                self._close_active()

    def close(self) -> None:
        """Seal and release every lock; unshipped segments stay for the next process."""
        with self._lock:
            self._close_active()
        for fd in self._adopted.values():
            os.close(fd)
        self._adopted.clear()
        if self._owner_fd is not None:
            if not self._own_segments():
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path(self.owner).unlink()
            os.close(self._owner_fd)
            self._owner_fd = None

    def backlog(self) -> Backlog:
        found = Backlog()
        with self._lock:
            segments = list(self._sealed) + list(self._foreign.values())
            if self._active is not None and self._active.rows:
                segments.append(self._active)
        for segment in segments:
            found.add(segment.rows, segment.oldest)
        return found

    def _roll(self) -> None:
        self._close_active()
        while True:
            self._seq += 1
            path = self.directory / f"{self.name}-{self.owner}-{self._seq:08d}.seg"
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
                break
            except FileExistsError:  # never write into a file someone else made
                continue
        self._active = _Segment(path, 0, None)
        self._active_bytes = 0

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._active is not None:
            if self._active.rows:
                self._sealed.append(self._active)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._active.path.unlink()
            self._active = None

    # -- shipping (the shipper thread) -------------------------------------------------------------

    def adopt(self) -> None:
        """Take the locks of owners that are gone and queue their segments for shipping."""
        owners = {match.group(1) for match in self._matches()}
        owners |= {
            path.name[len(self.name) + 1 : -len(".lock")]
            for path in self.directory.glob(f"{self.name}-*.lock")
        }
        owners.discard(self.owner)
        for owner in sorted(owners - set(self._adopted)):
            fd = os.open(self._lock_path(owner), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # alive: its own shipper ships it
                continue
            self._adopted[owner] = fd
            log.info("adopting the %s journal of %s, a process that is gone", self.name, owner)
        for match in self._matches():
            path = self.directory / match.group(0)
            if match.group(1) in self._adopted and path not in self._foreign:
                measured = _measure(path, self.weigh)
                with self._lock:
                    self._foreign[path] = measured
        for owner, fd in list(self._adopted.items()):
            if not any(m.group(1) == owner for m in self._matches()):
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path(owner).unlink()
                os.close(fd)
                del self._adopted[owner]

    def ship(self, sink: Sink, deadline: float | None = None) -> ShipReport:
        """Ship sealed segments, oldest first, until done, the store is down or ``deadline``."""
        report = ShipReport()
        with self._lock:
            queue = list(self._sealed)
            queue += sorted(self._foreign.values(), key=lambda s: s.path.name)
        for segment in queue:
            if deadline is not None and time.monotonic() >= deadline:
                report.finished = False
                break
            try:
                shipped, rejected = self._ship_one(segment, sink)
            except StoreDownError as exc:
                report.finished = False
                report.errors.append(str(exc))
                break
            report.shipped += shipped
            report.rejected += rejected
            report.segments += 1
        return report

    def reject(self, entries: Sequence[Entry], reason: str) -> None:
        """Keep entries the store refused, in full, for a person to look at."""
        if not entries:
            return
        lines = b"".join(
            orjson.dumps({"reason": reason, "entry": entry}, option=orjson.OPT_NON_STR_KEYS) + b"\n"
            for entry in entries
        )
        self._append_rejected(lines)

    def _ship_one(self, segment: _Segment, sink: Sink) -> tuple[int, int]:
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:  # shipped by a process that adopted it before us
            self._forget(segment)
            return 0, 0
        entries, bad = _parse(data)
        again = sink(entries)  # raises StoreDownError: the segment stays, untouched
        if again:
            times = [entry["t"] for entry in again if isinstance(entry.get("t"), int | float)]
            weight = sum(self.weigh(entry) for entry in again)
            self.append(_lines(again), weight, min(times) if times else None)
        if bad:
            log.warning("%s: %d unreadable journal line(s) kept aside", segment.path.name, len(bad))
            self._append_rejected(
                b"".join(
                    orjson.dumps({"reason": f"unreadable line in {segment.path.name}", "raw": raw})
                    + b"\n"
                    for raw in bad
                )
            )
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        self._forget(segment)
        rows = sum(self.weigh(entry) for entry in entries)
        return rows - sum(self.weigh(entry) for entry in again), len(bad)

    def _forget(self, segment: _Segment) -> None:
        with self._lock:
            if segment in self._sealed:
                self._sealed.remove(segment)
            self._foreign.pop(segment.path, None)

    def _append_rejected(self, lines: bytes) -> None:
        fd = os.open(self.rejected_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)

    def _matches(self) -> list[re.Match[str]]:
        try:
            names = sorted(path.name for path in self.directory.iterdir())
        except FileNotFoundError:
            return []
        return [m for name in names if (m := self._pattern.match(name))]

    def _own_segments(self) -> list[str]:
        return [m.group(0) for m in self._matches() if m.group(1) == self.owner]

    def _lock_path(self, owner: str) -> Path:
        return self.directory / f"{self.name}-{owner}.lock"


def _lines(entries: Sequence[Entry]) -> bytes:
    return b"".join(
        orjson.dumps(entry, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        for entry in entries
    )


def encode(entries: Sequence[Entry]) -> bytes:
    """Entries as journal lines (orjson: NaN becomes null, numpy scalars plain numbers)."""
    return _lines(entries)


def _parse(data: bytes) -> tuple[list[Entry], list[str]]:
    """The segment's entries, and lines that are not (a torn tail included), as text."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the last line is complete
    entries: list[Entry] = []
    bad: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(line.decode(errors="replace"))
            continue
        if isinstance(value, dict):
            entries.append(value)
        else:
            bad.append(line.decode(errors="replace"))
    if tail.strip():
        bad.append(tail.decode(errors="replace"))
    return entries, bad


def _measure(path: Path, weigh: Callable[[Entry], int]) -> _Segment:
    """Rows and oldest time of a segment another process wrote."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _Segment(path, 0, None)
    entries, _ = _parse(data)
    times = [float(e["t"]) for e in entries if isinstance(e.get("t"), int | float)]
    return _Segment(path, sum(weigh(entry) for entry in entries), min(times) if times else None)


class Shipper:
    """The thread that seals, adopts and ships a journal every ``every_s``; backs off when down."""

    def __init__(
        self,
        journal: Journal,
        sink: Sink,
        *,
        every_s: float = 0.25,
        retry_s: float = 1.0,
        probe: Callable[[], None] | None = None,
        probe_s: float = 2.0,
        name: str = "loopml-journal-shipper",
    ) -> None:
        self.journal = journal
        self.sink = sink
        self.probe = probe
        self.probe_s = probe_s
        self._next_probe = 0.0
        self.every_s = every_s
        self.retry_s = retry_s
        self.shipped = 0
        self.rejected = 0
        self.store_up: bool | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._drain_deadline: float | None = None
        self._next_try = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_s: float) -> bool:
        """Ship what can be shipped within ``drain_s``; the rest stays journaled. True if all."""
        if self._thread.ident is None:  # never started: nothing to drain
            self.journal.close()
            return self.journal.backlog().rows == 0
        self._drain_deadline = time.monotonic() + drain_s
        self._stop.set()
        self._thread.join(drain_s + 2.0)
        done = not self._thread.is_alive() and self.journal.backlog().rows == 0
        if not self._thread.is_alive():
            self.journal.close()
        return done

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.every_s)
            try:
                self.journal.seal()
                self.journal.adopt()
                if stopping:
                    self._pass(self._drain_deadline)
                    return
                if time.monotonic() >= self._next_try:
                    self._pass(None)
            except Exception:  # the shipper must outlive any surprise; the journal keeps the rows
                log.exception("journal shipper failed; will retry")
                if stopping:
                    return

    def _pass(self, deadline: float | None) -> None:
        report = self.journal.ship(self.sink, deadline)
        self.shipped += report.shipped
        self.rejected += report.rejected
        if report.errors:
            self._down(report.errors[0])
        elif report.segments:
            self._up()
        elif self.probe is not None and time.monotonic() >= self._next_probe:
            # nothing to ship: still find out whether the store answers, so status is true
            self._next_probe = time.monotonic() + self.probe_s
            try:
                self.probe()
            except StoreDownError as exc:
                self._down(str(exc))
            else:
                self._up()

    def _down(self, error: str) -> None:
        if self.store_up is not False:
            log.warning("prediction store unreachable (%s); journaling", error)
        self.store_up = False
        self.last_error = error
        self._next_try = time.monotonic() + self.retry_s

    def _up(self) -> None:
        if self.store_up is False:
            log.warning("prediction store is back; shipping the journal")
        self.store_up = True
        self.last_error = None
