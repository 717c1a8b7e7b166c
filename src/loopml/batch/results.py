"""Reading batch results back from the prediction log: counts while waiting, then the scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from loopml.batch.scoring import prediction_id, probability_column
from loopml.store.predictions import PREDICTION, PredictionLog
from loopml.store.tables import Prediction


def count_logged(log: PredictionLog, job_id: str) -> int:
    """How many predictions of the job's batches are in the log so far (a full scan; for tests)."""
    table = Prediction.__table__
    query = (
        sa.select(sa.func.count()).select_from(table).where(table.c.batch_id.like(f"{job_id}-%"))
    )
    with log.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def count_by_batch(log: PredictionLog, batch_ids: Sequence[str]) -> dict[str, int]:
    """Logged predictions per batch id, through the batch id index; missing batches count 0."""
    table = Prediction.__table__
    counts = dict.fromkeys(batch_ids, 0)
    with log.engine.connect() as connection:
        for start in range(0, len(batch_ids), 1_000):
            chunk = list(batch_ids[start : start + 1_000])
            query = (
                sa.select(table.c.batch_id, sa.func.count())
                .where(table.c.batch_id.in_(chunk))
                .group_by(table.c.batch_id)
            )
            for batch, count in connection.execute(query):
                counts[batch] = int(count)
    return counts


def fetch_scores(log: PredictionLog, batch: str, rows: int) -> pd.DataFrame:
    """The predictions of ``batch`` (``rows`` rows) in row order, as score columns."""
    table = Prediction.__table__
    query = sa.select(table.c.id, table.c.outputs).where(table.c.batch_id == batch)
    with log.engine.connect() as connection:
        outputs: dict[str, dict[str, Any]] = {row[0]: row[1] for row in connection.execute(query)}
    ids = [prediction_id(batch, row) for row in range(rows)]
    missing = sum(1 for identifier in ids if identifier not in outputs)
    if missing:
        raise LookupError(f"batch {batch}: {missing} of {rows} predictions are not logged")
    records: list[dict[str, Any]] = []
    for identifier in ids:
        found = outputs[identifier]
        record: dict[str, Any] = {PREDICTION: found.get(PREDICTION)}
        for label, value in (found.get("probabilities") or {}).items():
            record[probability_column(label)] = value
        records.append(record)
    return pd.DataFrame.from_records(records)
