"""The prediction log: every scored row, online or batch, and the labels that come back.

Serving and the inference workers write here; monitoring reads windows of it.
Writes are idempotent by prediction id (a replayed spool or a redelivered
batch never duplicates a row), and reads come in bounded chunks so a monitor
can walk a log larger than memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from loopml.store.db import connect
from loopml.store.tables import Feedback, Prediction

ONLINE, BATCH = "online", "batch"


def new_prediction_id() -> str:
    """A fresh prediction id (hex UUID4), the key clients send feedback by."""
    return uuid.uuid4().hex


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


_FIELDS = tuple(f.name for f in fields(PredictionRecord))


class PredictionLog:
    """Reads and writes the ``predictions`` and ``feedback`` tables of the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> PredictionLog:
        """The log in the store at ``url``, migrated to the current schema."""
        return cls(connect(url))

    def write(self, records: Sequence[PredictionRecord]) -> int:
        """Insert ``records`` in one transaction; ids already present are skipped.

        Returns how many rows were sent (duplicates included), so callers can
        count what they handed over.
        """
        if not records:
            return 0
        statement = _insert_ignoring_duplicates(self.engine)
        with self.engine.begin() as connection:
            connection.execute(statement, [record.as_row() for record in records])
        return len(records)

    def add_feedback(self, prediction_id: str, label: Any, *, at: datetime | None = None) -> None:
        """Record the ground truth ``label`` for ``prediction_id``."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.insert(Feedback),
                {
                    "prediction_id": prediction_id,
                    "label": {"label": label},
                    "created_at": at or datetime.now(UTC),
                },
            )

    def count(self, *, model_name: str | None = None, batch_id: str | None = None) -> int:
        """How many predictions are stored, optionally for one model or one batch."""
        query = sa.select(sa.func.count()).select_from(Prediction.__table__)
        if model_name is not None:
            query = query.where(Prediction.model_name == model_name)
        if batch_id is not None:
            query = query.where(Prediction.batch_id == batch_id)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def exists(self, prediction_id: str) -> bool:
        query = sa.select(Prediction.id).where(Prediction.id == prediction_id)
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

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
        missing). Keyset pagination keeps memory bounded on any log size.
        """
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
            frame = _to_frame(rows)
            if with_feedback:
                frame["label"] = frame["prediction_id"].map(
                    self.labels(list(frame["prediction_id"]))
                )
            yield frame
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


def _to_frame(rows: Sequence[sa.Row[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records([row.inputs for row in rows])
    frame["prediction_id"] = [row.id for row in rows]
    frame["created_at"] = [row.created_at for row in rows]
    frame["model_version"] = [row.model_version for row in rows]
    frame["prediction"] = [row.outputs.get("prediction") for row in rows]
    frame["probabilities"] = [row.outputs.get("probabilities") for row in rows]
    return frame


def _insert_ignoring_duplicates(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(Prediction).on_conflict_do_nothing(index_elements=["id"])
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(Prediction).on_conflict_do_nothing(index_elements=["id"])
    return sa.insert(Prediction)
