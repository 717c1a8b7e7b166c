"""The server's side of the prediction log: off the request path, lossless when the store is down.

A request appends one tuple to an in-memory deque and returns. A writer
thread turns queued tuples into :class:`PredictionRecord` rows and writes them
in batches. When the database cannot be reached, batches go to a spool file
(JSON lines under ``serve_spool_dir``) and every later batch follows them
there, keeping order, until a replay of the spool succeeds. Replays are safe
to repeat: the store skips prediction ids it already has. If the queue is full
(the writer is stuck on a slow database) the request thread spools directly:
slower for that request, but nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from loopml.serving.table import Table
from loopml.store.db import connect
from loopml.store.predictions import ONLINE, PredictionLog, PredictionRecord

log = logging.getLogger(__name__)

_PREDICTIONS, _FEEDBACK = "p", "f"


@dataclass(frozen=True)
class Scored:
    """What one request logs: built into rows by the writer thread, not the request."""

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
    """Bounded queue + background writer + spool file for one server process."""

    def __init__(
        self,
        database_url: str,
        spool_dir: Path,
        *,
        max_queued_rows: int = 200_000,
        flush_s: float = 0.25,
        retry_s: float = 1.0,
        batch_rows: int = 500,
    ) -> None:
        self.database_url = _with_timeouts(database_url)
        self.spool_dir = spool_dir
        self.spool_path = spool_dir / f"predictions-{os.getpid()}.jsonl"
        self.max_queued_rows = max_queued_rows
        self.flush_s = flush_s
        self.retry_s = retry_s
        self.batch_rows = batch_rows
        self._queue: deque[Scored | Label] = deque()
        # one writer each (request thread, writer thread): no lock needed for the difference
        self._enqueued_rows = 0
        self._dequeued_rows = 0
        self._spool_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: PredictionLog | None = None
        self._next_retry = 0.0
        self.written = 0
        self.spooled = 0
        self.replayed = 0
        self.database_up: bool | None = None
        self.last_error: str | None = None

    # -- request path ----------------------------------------------------------------------

    def log(self, item: Scored | Label) -> None:
        """Queue one request's predictions (or a label); never blocks on the database."""
        rows = item.table.n_rows if isinstance(item, Scored) else 1
        if self.queued_rows + rows > self.max_queued_rows:
            self._append_spool(self._rows_of([item]))
            return
        self._enqueued_rows += rows
        self._queue.append(item)

    @property
    def queued_rows(self) -> int:
        return self._enqueued_rows - self._dequeued_rows

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        # Open (and migrate) the store here, on the starting thread: Alembic keeps global
        # state, so a migration on the writer thread could collide with MLflow's own.
        # A store that is down now is retried by the writer.
        try:
            self._store()
            self.database_up = True
        except Exception as exc:
            self._log = None
            self._down(exc)
        self._thread = threading.Thread(target=self._run, name="loopml-prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write (or spool) whatever is queued, then stop the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._log is not None:
            self._log.engine.dispose()

    def status(self) -> dict[str, Any]:
        return {
            "database_up": self.database_up,
            "queued": self.queued_rows,
            "written": self.written,
            "spooled": self.spooled,
            "replayed": self.replayed,
            "spool_pending": self._spool_files() != [],
            "last_error": self.last_error,
        }

    # -- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        self._next_retry = 0.0
        while True:
            stopping = self._stop.is_set()
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self._flush()
            except Exception:  # the writer must outlive any surprise; items are spooled first
                log.exception("prediction log writer failed; will retry")
            if stopping:
                return

    def _flush(self) -> None:
        items = self._drain()
        rows = self._rows_of(items)
        if self._spool_files():
            if time.monotonic() >= self._next_retry:
                self._append_spool(rows)
                self._replay()
                return
            self._append_spool(rows)
            return
        if rows and not self._write(rows):
            self._append_spool(rows)

    def _drain(self) -> list[Scored | Label]:
        items: list[Scored | Label] = []
        while self._queue:
            item = self._queue.popleft()
            self._dequeued_rows += item.table.n_rows if isinstance(item, Scored) else 1
            items.append(item)
        return items

    def _write(self, rows: list[dict[str, Any]]) -> bool:
        """Write rows in order; ``False`` (and a retry later) when the database is down."""
        try:
            store = self._store()
        except Exception as exc:  # unreachable, or migrating under another process: retry later
            self._log = None
            self._down(exc)
            return False
        try:
            predictions: list[PredictionRecord] = []
            for row in rows:
                if row["k"] == _PREDICTIONS:
                    predictions.append(_record(row))
                    continue
                if predictions:
                    self._write_chunked(store, predictions)
                    predictions = []
                at = datetime.fromtimestamp(row["at"], UTC)
                store.add_feedback(row["prediction_id"], row["label"], at=at)
                self.written += 1
            if predictions:
                self._write_chunked(store, predictions)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
            self._down(exc)
            return False
        except Exception as exc:
            if _is_connection_error(exc):
                self._down(exc)
                return False
            # Rows the database refuses for another reason would block the log forever:
            # keep them aside, in full, for a person to look at.
            rejected = self.spool_dir / f"rejected-{os.getpid()}.jsonl"
            log.exception("prediction store refused %d rows; kept in %s", len(rows), rejected)
            with self._spool_lock, rejected.open("ab") as handle:
                handle.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))
            self.last_error = f"{type(exc).__name__}: {exc}"
            return True
        if self.database_up is False:
            log.warning("prediction store is back; writing the log again")
        self.database_up = True
        self.last_error = None
        return True

    def _write_chunked(self, store: PredictionLog, records: list[PredictionRecord]) -> None:
        for start in range(0, len(records), self.batch_rows):
            self.written += store.write(records[start : start + self.batch_rows])
            time.sleep(0)  # between chunks, hand the GIL to the request path

    def _down(self, exc: BaseException) -> None:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.database_up is not False:
            log.warning(
                "prediction store unreachable (%s); spooling to %s", message, self.spool_dir
            )
        self.database_up = False
        self.last_error = message
        self._next_retry = time.monotonic() + self.retry_s
        if self._log is not None:
            self._log.engine.dispose()

    def _store(self) -> PredictionLog:
        if self._log is None:
            self._log = PredictionLog(connect(self.database_url, json_serializer=_json_text))
        return self._log

    # -- spool -----------------------------------------------------------------------------------

    def _spool_files(self) -> list[Path]:
        """This process's spool plus any left by a process that is gone."""
        if not self.spool_dir.exists():
            return []
        files = []
        for path in sorted(self.spool_dir.glob("predictions-*.jsonl*")):
            pid = path.name.split("-", 1)[1].split(".", 1)[0]
            if path.name.startswith(self.spool_path.name) or not _alive(pid):
                files.append(path)
        return files

    def _append_spool(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        with self._spool_lock:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            with self.spool_path.open("ab") as handle:
                handle.write(data)
        self.spooled += sum(1 for row in rows if row["k"] == _PREDICTIONS)

    def _replay(self) -> None:
        """Move spool files aside, write them in order, delete each once written."""
        for path in self._spool_files():
            claimed = path
            if path.suffix == ".jsonl":
                claimed = path.with_name(path.name + f".replay-{os.getpid()}")
                with self._spool_lock:
                    try:
                        path.rename(claimed)
                    except FileNotFoundError:
                        continue
            rows = [orjson.loads(line) for line in claimed.read_bytes().splitlines() if line]
            if not self._write(rows):
                return  # stays claimed; the next replay takes it again
            claimed.unlink()
            self.replayed += sum(1 for row in rows if row["k"] == _PREDICTIONS)
            log.info("replayed %d spooled prediction log rows from %s", len(rows), claimed.name)

    # -- rows --------------------------------------------------------------------------------------

    @staticmethod
    def _rows_of(items: Sequence[Scored | Label]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Label):
                rows.append(
                    {
                        "k": _FEEDBACK,
                        "prediction_id": item.prediction_id,
                        "label": item.label,
                        "at": item.at,
                    }
                )
                continue
            if len(rows) >= 256:
                time.sleep(0)  # let the request threads have the GIL between chunks
            inputs = item.table.records()
            for i, prediction_id in enumerate(item.ids):
                outputs: dict[str, Any] = {"prediction": item.predictions[i]}
                if item.probabilities is not None and item.classes is not None:
                    outputs["probabilities"] = dict(
                        zip(item.classes, item.probabilities[i], strict=True)
                    )
                rows.append(
                    {
                        "k": _PREDICTIONS,
                        "id": prediction_id,
                        "model_name": item.model_name,
                        "model_version": item.model_version,
                        "inputs": inputs[i],
                        "outputs": outputs,
                        "created_at": item.created_at,
                        "latency_ms": item.latency_ms,
                        "skew": item.skew,
                    }
                )
        return rows


def _record(row: dict[str, Any]) -> PredictionRecord:
    return PredictionRecord(
        id=row["id"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        inputs=row["inputs"],
        outputs=row["outputs"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        source=ONLINE,
        latency_ms=row["latency_ms"],
        skew=row.get("skew"),
    )


def _json_text(value: Any) -> str:
    """orjson for the log's JSON columns: several times faster than json.dumps, NaN -> null."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ValueError:
        return False
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_connection_error(exc: BaseException) -> bool:
    from loopml.core.errors import StoreError

    return isinstance(exc, StoreError)


def _with_timeouts(url: str) -> str:
    """PostgreSQL URLs get a connect timeout, so a dead server fails fast instead of hanging."""
    if url.startswith("postgresql") and "connect_timeout" not in url:
        return url + ("&" if "?" in url else "?") + "connect_timeout=3"
    return url
