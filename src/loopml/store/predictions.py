"""The prediction log: every scored row, online or batch, and the labels that come back.

Serving and the inference workers write here; monitoring reads windows of it.
This module owns the prediction record and its construction from scores
(:func:`prediction_records`), so the server's journal and batch scoring write
the same row. Writes are idempotent by prediction id (a re-shipped journal
segment or a redelivered batch never duplicates a row), labels are stored only
for predictions the log holds, with that prediction's model version, and reads
come in bounded chunks so a monitor can walk a log larger than memory.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from loopml.core.skew import SkewReport
from loopml.store import batchlog
from loopml.store.bounded import bounded, with_timeouts
from loopml.store.bulk import copy_predictions, supports_copy
from loopml.store.clock import utc
from loopml.store.db import connect
from loopml.store.tables import Feedback, Prediction

ONLINE, BATCH = "online", "batch"
PREDICTION, PROBABILITIES = "prediction", "probabilities"
_COPY_FROM_ROWS = 500
"""From this many rows PostgreSQL writes go through COPY (cheaper than a multi-row INSERT)."""
ROWS_PER_TRANSACTION = 10_000
"""Most rows written in one transaction (a few hundred milliseconds on PostgreSQL)."""


def new_prediction_id() -> str:
    """A fresh prediction id (hex UUID4), the key clients send feedback by."""
    return uuid.uuid4().hex


def json_text(value: Any) -> str:
    """orjson for the log's JSON columns: several times faster than json.dumps, NaN -> null."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


@dataclass(frozen=True)
class PredictionRecord:
    """One row of the prediction log, ready to write."""

    id: str
    model_name: str
    model_version: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    source: str = ONLINE
    batch_id: str | None = None
    latency_ms: float | None = None
    skew: dict[str, Any] | None = None

    def as_row(self) -> dict[str, Any]:
        # A shallow dict: dataclasses.asdict deep-copies inputs and outputs, which made
        # it cost more than the database insert itself.
        return {name: getattr(self, name) for name in _FIELDS}

    def to_entry(self) -> dict[str, Any]:
        """The record as a journal entry (``k`` = ``p``, ``t`` = created at, epoch seconds)."""
        entry = self.as_row()
        entry["k"] = _PREDICTION_ENTRY
        entry["t"] = entry.pop("created_at").timestamp()
        return entry

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> PredictionRecord:
        """The record of a journal entry; KeyError/TypeError/ValueError when it is not one."""
        return cls(
            id=_text(entry["id"], 36),
            model_name=_text(entry["model_name"], 255),
            model_version=_text(entry["model_version"], 32),
            inputs=_mapping(entry["inputs"]),
            outputs=_mapping(entry["outputs"]),
            created_at=datetime.fromtimestamp(float(entry["t"]), UTC),
            source=_text(entry.get("source") or ONLINE, 16),
            batch_id=entry.get("batch_id"),
            latency_ms=entry.get("latency_ms"),
            skew=entry.get("skew"),
        )


_FIELDS = tuple(f.name for f in fields(PredictionRecord))
_PREDICTION_ENTRY, _LABEL_ENTRY, _REQUEST_ENTRY = "p", "f", "r"


@dataclass(frozen=True)
class LabelRecord:
    """Ground truth for one prediction; ``id`` makes a re-shipped label a no-op."""

    prediction_id: str
    label: Any
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=new_prediction_id)

    def to_entry(self) -> dict[str, Any]:
        return {
            "k": _LABEL_ENTRY,
            "id": self.id,
            "prediction_id": self.prediction_id,
            "label": self.label,
            "t": self.created_at.timestamp(),
        }

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> LabelRecord:
        return cls(
            prediction_id=_text(entry["prediction_id"], 36),
            label=entry["label"],
            created_at=datetime.fromtimestamp(float(entry["t"]), UTC),
            id=_text(entry["id"], 32),
        )


def is_label_entry(entry: dict[str, Any]) -> bool:
    return entry.get("k") == _LABEL_ENTRY


def prediction_records(
    ids: Sequence[str],
    model_name: str,
    model_version: str,
    inputs: Sequence[dict[str, Any]],
    predictions: Sequence[Any],
    probabilities: Sequence[Sequence[float]] | None = None,
    classes: Sequence[str] | None = None,
    *,
    created_at: datetime | None = None,
    source: str = ONLINE,
    batch_id: str | None = None,
    latency_ms: float | None = None,
    skew: dict[str, Any] | None = None,
) -> list[PredictionRecord]:
    """One record per scored row: the one place a prediction-log row is made from scores.

    ``outputs`` is ``{"prediction": p}`` plus, for classifiers (``probabilities``
    and ``classes`` given), ``{"probabilities": {class: p}}``.
    """
    now = created_at or datetime.now(UTC)
    labels = [str(label) for label in classes] if classes is not None else None
    made: list[PredictionRecord] = []
    for row, prediction_id in enumerate(ids):
        outputs: dict[str, Any] = {PREDICTION: predictions[row]}
        if probabilities is not None and labels is not None:
            outputs[PROBABILITIES] = dict(zip(labels, probabilities[row], strict=True))
        made.append(
            PredictionRecord(
                prediction_id,
                model_name,
                model_version,
                inputs[row],
                outputs,
                now,
                source,
                batch_id,
                latency_ms,
                skew,
            )
        )
    return made


def request_entry(
    ids: Sequence[str],
    model_name: str,
    model_version: str,
    predictions: Sequence[Any],
    probabilities: Sequence[Sequence[float]] | None,
    classes: Sequence[str] | None,
    *,
    created_at: float,
    latency_ms: float | None,
    skew: dict[str, Any] | None,
    columns: Sequence[str] | None = None,
    matrix: Any = None,
    inputs: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One online request as one journal entry: the cheap form for the request path.

    The inputs travel as the request's float ``matrix`` with its ``columns``
    (one orjson call serialises it) or as ``inputs`` records; the shipper turns
    the entry into rows with :func:`records_from_entry`.
    """
    return {
        "k": _REQUEST_ENTRY,
        "t": created_at,
        "ids": ids,
        "model_name": model_name,
        "model_version": model_version,
        "columns": columns,
        "matrix": matrix,
        "inputs": inputs,
        "predictions": predictions,
        "probabilities": probabilities,
        "classes": classes,
        "latency_ms": latency_ms,
        "skew": skew,
    }


def records_from_entry(entry: dict[str, Any]) -> list[PredictionRecord]:
    """The prediction records of a journal entry (a request or one row); raises if malformed."""
    if entry.get("k") != _REQUEST_ENTRY:
        return [PredictionRecord.from_entry(entry)]
    ids = [_text(i, 36) for i in entry["ids"]]
    if entry.get("inputs") is not None:
        inputs = [_mapping(row) for row in entry["inputs"]]
    else:
        columns = [str(name) for name in entry["columns"]]
        inputs = [dict(zip(columns, row, strict=True)) for row in entry["matrix"]]
    predictions = list(entry["predictions"])
    if not len(ids) == len(inputs) == len(predictions):
        raise ValueError("ids, inputs and predictions differ in length")
    return prediction_records(
        ids,
        _text(entry["model_name"], 255),
        _text(entry["model_version"], 32),
        inputs,
        predictions,
        entry.get("probabilities"),
        entry.get("classes"),
        created_at=datetime.fromtimestamp(float(entry["t"]), UTC),
        latency_ms=entry.get("latency_ms"),
        skew=entry.get("skew"),
    )


def entry_rows(entry: dict[str, Any]) -> int:
    """How many log rows a journal entry stands for (a request's predictions, or 1)."""
    ids = entry.get("ids")
    return len(ids) if isinstance(ids, list) else 1


def frame_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-safe dicts: NaN becomes null, numpy scalars Python ones."""
    return [_clean(row) for row in frame.to_dict(orient="records")]


def value_skew(report: SkewReport) -> dict[str, Any] | None:
    """What a prediction records of its request's skew: value issues only (None when none)."""
    if not report.value_issues:
        return None
    return {"rows": report.rows, "value_issues": [i.to_dict() for i in report.value_issues]}


class PredictionLog:
    """Reads and writes the ``predictions`` and ``feedback`` tables of the store.

    With ``timeout_s`` every write is bounded: connect, statement and socket
    timeouts in the connection and a watchdog that closes a connection whose
    call overruns (a database that accepts and never answers), so a writer
    errors out instead of hanging.
    """

    def __init__(self, engine: Engine, *, timeout_s: float | None = None) -> None:
        self.engine = engine
        self.timeout_s = timeout_s

    @classmethod
    def open(cls, url: str, *, timeout_s: float | None = None) -> PredictionLog:
        """The log in the store at ``url``, migrated to the current schema."""
        if timeout_s is None:
            return cls(connect(url, json_serializer=json_text))
        # no pool: a fresh connection per write is bounded by connect_timeout, a pooled
        # one would first be pinged without any bound
        engine = connect(
            with_timeouts(url, timeout_s), json_serializer=json_text, poolclass=sa.pool.NullPool
        )
        return cls(engine, timeout_s=timeout_s)

    def write(self, records: Sequence[PredictionRecord]) -> int:
        """Insert ``records`` in one transaction; ids already present are skipped.

        Returns how many rows were sent (duplicates included), so callers can
        count what they handed over.
        """
        if not records:
            return 0
        with bounded(self.engine, self.timeout_s) as connection:
            self._insert(connection, records)
        return len(records)

    def write_with_labels(
        self, records: Sequence[PredictionRecord], labels: Sequence[LabelRecord]
    ) -> list[LabelRecord]:
        """Predictions, then labels; the labels of unknown predictions.

        Those are not stored: a label is only kept for a prediction in the log,
        with that prediction's model version. Predictions go in transactions of
        at most ``ROWS_PER_TRANSACTION`` rows, each well inside the statement
        timeout: one large request (a whole batch in one ``/predict``) in a
        single transaction would time out on every retry and hold the journal
        behind it forever. Inserts skip ids already logged, so a retry after a
        partial write is a no-op for what was committed.
        """
        for start in range(0, len(records), ROWS_PER_TRANSACTION):
            with bounded(self.engine, self.timeout_s) as connection:
                self._insert(connection, records[start : start + ROWS_PER_TRANSACTION])
        unknown: list[LabelRecord] = []
        for start in range(0, len(labels), ROWS_PER_TRANSACTION):
            with bounded(self.engine, self.timeout_s) as connection:
                unknown += _insert_labels(connection, labels[start : start + ROWS_PER_TRANSACTION])
        return unknown

    def add_feedback(self, prediction_id: str, label: Any, *, at: datetime | None = None) -> bool:
        """Store ``label`` for ``prediction_id``; False (nothing stored) when the id is unknown."""
        record = LabelRecord(prediction_id, label, at or datetime.now(UTC))
        return not self.write_with_labels([], [record])

    def ping(self) -> None:
        with bounded(self.engine, self.timeout_s) as connection:
            connection.execute(sa.text("SELECT 1"))

    def _insert(self, connection: sa.Connection, records: Sequence[PredictionRecord]) -> None:
        if supports_copy(self.engine) and len(records) >= _COPY_FROM_ROWS:
            copy_predictions(connection, records, json_text)
        else:
            _insert_rows(connection, Prediction, "id", [r.as_row() for r in records])

    def count(self, *, model_name: str | None = None, batch_id: str | None = None) -> int:
        """How many predictions are stored (SQL rows and batch segments), for one model or batch."""
        query = sa.select(sa.func.count()).select_from(Prediction.__table__)
        if model_name is not None:
            query = query.where(Prediction.model_name == model_name)
        if batch_id is not None:
            query = query.where(Prediction.batch_id == batch_id)
        with self.engine.connect() as connection:
            rows = int(connection.execute(query).scalar_one())
        return rows + batchlog.logged_rows(self.engine, model_name=model_name, batch_id=batch_id)

    def exists(self, prediction_id: str) -> bool:
        """Whether the log holds ``prediction_id``: an online row or a batch-scored one."""
        query = sa.select(Prediction.id).where(Prediction.id == prediction_id)
        with self.engine.connect() as connection:
            if connection.execute(query).first() is not None:
                return True
        return bool(batchlog.versions_of(self.engine, [prediction_id]))

    def frames(
        self,
        model_name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        chunk_rows: int = 50_000,
        with_feedback: bool = False,
    ) -> Iterator[pd.DataFrame]:
        """The log of ``model_name`` in time order, ``chunk_rows`` rows at a time.

        Each frame has the input columns, plus ``prediction_id``,
        ``created_at``, ``model_version``, ``prediction``, ``probabilities``
        and, with ``with_feedback``, ``label`` (the newest label per id, or
        missing). Online rows (SQL) and batch segments (Parquet, one time per
        chunk) come merged in time order as one log. Keyset pagination and
        segment-at-a-time reads keep memory bounded on any log size.
        """
        online = self._sql_frames(model_name, since, until, chunk_rows)
        batches = batchlog.segments(self.engine, model_name=model_name, since=since, until=until)
        for frame in _merge_by_time(online, batches):
            if with_feedback:
                frame["label"] = frame["prediction_id"].map(
                    self.labels(list(frame["prediction_id"]))
                )
            yield frame

    def _sql_frames(
        self,
        model_name: str,
        since: datetime | None,
        until: datetime | None,
        chunk_rows: int,
    ) -> Iterator[pd.DataFrame]:
        table = Prediction.__table__
        columns = [
            table.c.id,
            table.c.created_at,
            table.c.model_version,
            table.c.inputs,
            table.c.outputs,
        ]
        conditions = [table.c.model_name == model_name]
        if since is not None:
            conditions.append(table.c.created_at >= since)
        if until is not None:
            conditions.append(table.c.created_at < until)
        after: tuple[datetime, str] | None = None
        while True:
            query = sa.select(*columns).where(*conditions)
            if after is not None:
                query = query.where(sa.tuple_(table.c.created_at, table.c.id) > sa.tuple_(*after))
            query = query.order_by(table.c.created_at, table.c.id).limit(chunk_rows)
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
            if not rows:
                return
            after = (rows[-1].created_at, rows[-1].id)
            yield _to_frame(rows)
            if len(rows) < chunk_rows:
                return

    def labels(self, prediction_ids: Sequence[str]) -> dict[str, Any]:
        """The newest feedback label for each of ``prediction_ids`` that has one."""
        found: dict[str, Any] = {}
        table = Feedback.__table__
        with self.engine.connect() as connection:
            for start in range(0, len(prediction_ids), 5_000):
                chunk = list(prediction_ids[start : start + 5_000])
                query = (
                    sa.select(table.c.prediction_id, table.c.label)
                    .where(table.c.prediction_id.in_(chunk))
                    .order_by(table.c.created_at, table.c.id)
                )
                for prediction_id, label in connection.execute(query):
                    found[prediction_id] = label.get("label")
        return found


def _merge_by_time(
    online: Iterator[pd.DataFrame], batches: Sequence[sa.Row[Any]]
) -> Iterator[pd.DataFrame]:
    """Online frames (sorted) and batch segments (one time each) as one time-ordered stream."""
    pending = next(online, None)
    for segment in batches:
        moment = utc(segment.created_at)
        while pending is not None:
            times = pd.to_datetime(pending["created_at"], utc=True)
            before = (times < moment).to_numpy()
            if before.all():
                yield pending
                pending = next(online, None)
                continue
            if before.any():
                yield pending[before].reset_index(drop=True)
                pending = pending[~before].reset_index(drop=True)
            break
        yield batchlog.log_frame(batchlog.read_segment(segment.uri))
    while pending is not None:
        yield pending
        pending = next(online, None)


def _to_frame(rows: Sequence[sa.Row[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records([row.inputs for row in rows])
    frame["prediction_id"] = [row.id for row in rows]
    frame["created_at"] = [row.created_at for row in rows]
    frame["model_version"] = [row.model_version for row in rows]
    frame["prediction"] = [row.outputs.get("prediction") for row in rows]
    frame["probabilities"] = [row.outputs.get("probabilities") for row in rows]
    return frame


def _insert_labels(connection: sa.Connection, labels: Sequence[LabelRecord]) -> list[LabelRecord]:
    """Insert the labels of known predictions with their model version; the unknown ones."""
    table = Prediction.__table__
    wanted = sorted({label.prediction_id for label in labels})
    versions: dict[str, str] = {}
    for start in range(0, len(wanted), 1_000):
        query = sa.select(table.c.id, table.c.model_version).where(
            table.c.id.in_(wanted[start : start + 1_000])
        )
        versions.update((row[0], row[1]) for row in connection.execute(query))
    if len(versions) < len(wanted):  # not online: a batch-scored prediction, in a segment
        versions.update(
            batchlog.versions_of(connection.engine, [i for i in wanted if i not in versions])
        )
    known = [label for label in labels if label.prediction_id in versions]
    if known:
        _insert_rows(
            connection,
            Feedback,
            "entry_id",
            [
                {
                    "entry_id": label.id,
                    "prediction_id": label.prediction_id,
                    "model_version": versions[label.prediction_id],
                    "label": {"label": label.label},
                    "created_at": label.created_at,
                }
                for label in known
            ],
        )
    return [label for label in labels if label.prediction_id not in versions]


def _text(value: Any, longest: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise ValueError(f"expected a string of 1 to {longest} characters, got {value!r:.80}")
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _clean(row: dict[Any, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None
        cleaned[str(key)] = value
    return cleaned


_MOST_PARAMETERS = 30_000
"""Bound parameters in one multi-row INSERT (PostgreSQL takes at most 65,535)."""


def _insert_rows(
    connection: sa.Connection, model: Any, key: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert ``rows``, skipping ``key``s already present.

    On PostgreSQL as single multi-row statements, never as a driver
    ``executemany``: psycopg pipelines that, and ends the pipeline with a Flush
    after its Sync, which turns off the server's
    ``idle_in_transaction_session_timeout`` until the next statement. A COMMIT
    then lost to a hanging network would leave the transaction, and the row
    locks on its ids, open on the server for hours, and the next process's
    journal shipper could not write those ids (see ``store/bounded.py``).
    """
    statement = _insert_ignoring_duplicates(connection.engine, model, key)
    if connection.engine.dialect.name != "postgresql":
        connection.execute(statement, list(rows))
        return
    per_statement = max(_MOST_PARAMETERS // max(len(model.__table__.columns), 1), 1)
    for start in range(0, len(rows), per_statement):
        connection.execute(statement.values(list(rows[start : start + per_statement])))


def _insert_ignoring_duplicates(engine: Engine, model: Any = Prediction, key: str = "id") -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing(index_elements=[key])
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model).on_conflict_do_nothing(index_elements=[key])
    return sa.insert(model)
