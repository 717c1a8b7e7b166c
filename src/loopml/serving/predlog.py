"""The server's prediction log: journaled before the answer, shipped off the request path.

A request's predictions (and a feedback label) are appended to this process's
journal (:mod:`loopml.store.journal`) before the response is sent: one
``write()`` of JSON lines, no database on the request path. A shipper thread
moves sealed journal segments into the SQL store (idempotent by prediction id)
and deletes each only once committed. A store that refuses or hangs costs the
shipper a bounded wait (:mod:`loopml.store.bounded`) and marks the store down;
the journal keeps everything meanwhile, and a process that dies (SIGTERM after
its bounded drain, or SIGKILL) leaves its segments to the next process on the
same spool dir.

Labels are stored only for predictions the log holds. A label whose prediction
is not in the store yet (another server process may not have shipped it) is
journaled again and retried until ``label_grace_s`` has passed since the store
first answered without its prediction; then it is kept aside in the journal's
rejected file, never stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from loopml.core.errors import JournalError, StoreError
from loopml.serving.table import Table
from loopml.store.journal import Entry, Journal, Shipper, StoreDownError, encode
from loopml.store.predictions import (
    LabelRecord,
    PredictionLog,
    PredictionRecord,
    entry_rows,
    is_label_entry,
    records_from_entry,
    request_entry,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """What one request logs."""

    model_name: str
    model_version: str
    created_at: float
    ids: Sequence[str]
    table: Table
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[str] | None
    latency_ms: float
    skew: dict[str, Any] | None = None
    """The request's value skew against the reference profile, logged on each of its rows."""


@dataclass(frozen=True)
class Label:
    prediction_id: str
    label: Any
    at: float


class PredictionLogger:
    """This process's prediction journal, its shipper, and what ``/metadata`` says of them."""

    def __init__(
        self,
        database_url: str,
        spool_dir: Path,
        *,
        flush_s: float = 0.25,
        retry_s: float = 1.0,
        timeout_s: float = 3.0,
        drain_s: float = 5.0,
        label_grace_s: float = 60.0,
        segment_bytes: int = 16 << 20,
        enabled: bool = True,
    ) -> None:
        self.database_url = database_url
        self.spool_dir = spool_dir
        self.timeout_s = timeout_s
        self.drain_s = drain_s
        self.label_grace_s = label_grace_s
        self.enabled = enabled
        self.journal = Journal(spool_dir, roll_bytes=segment_bytes, weigh=entry_rows)
        self.shipper = Shipper(
            self.journal, self._ship, every_s=flush_s, retry_s=retry_s, probe=self._probe
        )
        self._log: PredictionLog | None = None
        self.journaled = 0
        self.labels_rejected = 0
        self._unknown_since: dict[str, float] = {}
        """Label id -> when the store (up) first did not hold its prediction."""

    # -- request path ----------------------------------------------------------------------

    def log(self, item: Scored | Label) -> None:
        """Journal one request's predictions (or a label); returns once the OS has the bytes."""
        if not self.enabled:
            return
        if isinstance(item, Label):
            at = datetime.fromtimestamp(item.at, UTC)
            entry = LabelRecord(item.prediction_id, item.label, at).to_entry()
            rows = 1
        else:
            entry = _entry(item)
            rows = item.table.n_rows
        if rows:
            try:
                self.journal.append(encode([entry]), rows, entry["t"])
            except OSError as exc:
                raise JournalError(
                    f"cannot write the prediction journal in {self.journal.directory}: {exc}; "
                    "the prediction was not answered (free space or fix LOOPML_SERVE_SPOOL_DIR)"
                ) from exc
            self.journaled += rows

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            return
        self.journal.open()
        # Open (and migrate) the store here, on the starting thread: Alembic keeps global
        # state, so a migration on the shipper thread could collide with MLflow's own.
        # A store that is down now is retried by the shipper.
        try:
            self._store()
        except Exception as exc:
            log.warning("prediction store unreachable at start (%s); journaling", _first_line(exc))
        self.shipper.start()

    def stop(self) -> None:
        """Ship what fits in ``drain_s``; the rest stays journaled for the next process."""
        if not self.enabled:
            return
        if not self.shipper.stop(self.drain_s):
            backlog = self.journal.backlog()
            log.warning(
                "stopping with %d prediction log entries journaled in %s; the next server "
                "on this spool dir ships them",
                backlog.rows,
                self.spool_dir,
            )

    def status(self) -> dict[str, Any]:
        backlog = self.journal.backlog()
        oldest = None if backlog.oldest is None else max(time.time() - backlog.oldest, 0.0)
        return {
            "enabled": self.enabled,
            "database_up": self.shipper.store_up,
            "journaled": self.journaled,
            "shipped": self.shipper.shipped,
            "backlog_rows": backlog.rows,
            "backlog_segments": backlog.segments,
            "oldest_unshipped_age_s": oldest,
            "labels_rejected": self.labels_rejected,
            "unreadable_lines": self.shipper.rejected,
            "journal_dir": str(self.spool_dir),
            "last_error": self.shipper.last_error,
        }

    # -- shipper thread ----------------------------------------------------------------------

    def _ship(self, entries: list[Entry]) -> list[Entry]:
        """Commit a segment's entries; the labels to try again later. Raises StoreDownError."""
        predictions: list[PredictionRecord] = []
        labels: list[LabelRecord] = []
        malformed: list[Entry] = []
        for entry in entries:
            try:
                if is_label_entry(entry):
                    labels.append(LabelRecord.from_entry(entry))
                else:
                    predictions += records_from_entry(entry)
            except (LookupError, TypeError, ValueError, ArithmeticError):
                # anything the entry's shape can raise (IndexError included): kept aside,
                # so one bad line never holds its segment and the ones after it
                malformed.append(entry)
        self.journal.reject(malformed, "not a prediction log entry")
        try:
            unknown = self._write(predictions, labels)
        except _RefusedError as refused:
            # The store refuses the batch for a reason other than being down (a value it
            # cannot take): write entry by entry so one bad row does not hold the rest.
            log.warning("prediction store refused a batch (%s); writing row by row", refused)
            unknown = []
            for record in predictions:
                self._write_or_reject([record], [], record.to_entry())
            for label in labels:
                unknown += self._write_or_reject([], [label], label.to_entry())
        now = time.time()
        unknown_ids = {label.id for label in unknown}
        for label in labels:  # stored: forget when it was first unknown
            if label.id not in unknown_ids:
                self._unknown_since.pop(label.id, None)
        # The grace runs from the first time a store that was up did not know the label's
        # prediction, not from the label's creation: after an outage every label is old,
        # and its prediction may sit in another process's journal shipped after this one.
        again: list[LabelRecord] = []
        expired: list[Entry] = []
        for label in unknown:
            if now - self._unknown_since.setdefault(label.id, now) < self.label_grace_s:
                again.append(label)
            else:
                self._unknown_since.pop(label.id, None)
                expired.append(label.to_entry())
        self.journal.reject(expired, "feedback for a prediction id the log does not hold")
        self.labels_rejected += len(expired)
        return [label.to_entry() for label in again]

    def _write_or_reject(
        self, records: list[PredictionRecord], labels: list[LabelRecord], entry: Entry
    ) -> list[LabelRecord]:
        try:
            return self._write(records, labels)
        except _RefusedError as refused:
            self.journal.reject([entry], f"refused by the store: {refused}")
            return []

    def _write(
        self, records: list[PredictionRecord], labels: list[LabelRecord]
    ) -> list[LabelRecord]:
        try:
            store = self._store()
            return store.write_with_labels(records, labels)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, StoreError, OSError) as exc:
            self._reset()
            raise StoreDownError(_first_line(exc)) from exc
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                self._reset()
                raise StoreDownError(_first_line(exc)) from exc
            raise _RefusedError(_first_line(exc)) from exc
        except sa.exc.StatementError as exc:
            raise _RefusedError(_first_line(exc)) from exc

    def _probe(self) -> None:
        try:
            self._store().ping()
        except (sa.exc.SQLAlchemyError, StoreError, OSError) as exc:
            self._reset()
            raise StoreDownError(_first_line(exc)) from exc

    def _store(self) -> PredictionLog:
        if self._log is None:
            self._log = PredictionLog.open(self.database_url, timeout_s=self.timeout_s)
        return self._log

    def _reset(self) -> None:
        if self._log is not None:
            self._log.engine.dispose()
        self._log = None


class _RefusedError(Exception):
    """The store is up but will not take these rows."""


def _entry(item: Scored) -> Entry:
    """The request as one journal entry: its float matrix as is, or its records."""
    table = item.table
    return request_entry(
        item.ids,
        item.model_name,
        item.model_version,
        item.predictions,
        item.probabilities,
        item.classes,
        created_at=item.created_at,
        latency_ms=item.latency_ms,
        skew=item.skew,
        columns=table.names if table.matrix is not None else None,
        matrix=None if table.matrix is None else np.ascontiguousarray(table.matrix),
        inputs=None if table.matrix is not None else table.records(),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
