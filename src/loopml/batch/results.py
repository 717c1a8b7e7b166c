"""Reading batch results back from the prediction log: counts while waiting, then the scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from loopml.batch.scoring import PREDICTION, prediction_id, probability_column
from loopml.store.predictions import PredictionLog
from loopml.store.tables import Prediction


def count_logged(log: PredictionLog, job_id: str) -> int:
    """How many predictions of the job's batches are in the log so far."""
    table = Prediction.__table__
    query = (
        sa.select(sa.func.count()).select_from(table).where(table.c.batch_id.like(f"{job_id}-%"))
    )
    with log.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def fetch_scores(log: PredictionLog, batch: str, rows: int) -> pd.DataFrame:
    """The predictions of ``batch`` (``rows`` rows) in row order, as score columns."""
    ids = [prediction_id(batch, row) for row in range(rows)]
    outputs = _outputs(log, ids)
    missing = [i for i in ids if i not in outputs]
    if missing:
        raise LookupError(f"batch {batch}: {len(missing)} of {rows} predictions are not logged")
    records: list[dict[str, Any]] = []
    for identifier in ids:
        found = outputs[identifier]
        record: dict[str, Any] = {PREDICTION: found.get(PREDICTION)}
        for label, value in (found.get("probabilities") or {}).items():
            record[probability_column(label)] = value
        records.append(record)
    return pd.DataFrame.from_records(records)


def _outputs(log: PredictionLog, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    table = Prediction.__table__
    found: dict[str, dict[str, Any]] = {}
    with log.engine.connect() as connection:
        for start in range(0, len(ids), 5_000):
            chunk = list(ids[start : start + 5_000])
            query = sa.select(table.c.id, table.c.outputs).where(table.c.id.in_(chunk))
            for identifier, outputs in connection.execute(query):
                found[identifier] = outputs
    return found
