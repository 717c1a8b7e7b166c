"""Synthetic data for the monitoring tests: a calibrated classifier on three features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from loopml.store.predictions import PredictionLog, PredictionRecord, new_prediction_id
from loopml.store.tables import Feedback

START = datetime(2026, 3, 1, tzinfo=UTC)


def features(rows: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """x1, x2 numeric (``shift`` moves both), colour categorical, and the true label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(shift, 1.0, rows),
            "x2": rng.normal(shift, 1.0, rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        }
    )
    frame["Class"] = (rng.random(rows) < probability(frame)).astype(int)
    return frame


def probability(frame: pd.DataFrame) -> np.ndarray:
    """P(Class = 1 | x): the model below knows it exactly, so it is calibrated."""
    return np.asarray(1 / (1 + np.exp(-2.0 * frame["x1"].to_numpy())))


def write_log(
    log: PredictionLog,
    frame: pd.DataFrame,
    *,
    model: str = "fraud",
    start: datetime = START,
    labels: bool = True,
    drop: tuple[str, ...] = (),
) -> list[str]:
    """Score ``frame`` with the calibrated model and write it to the prediction log."""
    p = probability(frame)
    records = []
    inputs = frame.drop(columns=["Class", *drop]).to_dict(orient="records")
    for i, row in enumerate(inputs):
        records.append(
            PredictionRecord(
                id=new_prediction_id(),
                model_name=model,
                model_version="1",
                inputs=row,
                outputs={
                    "prediction": int(p[i] >= 0.5),
                    "probabilities": {"0": float(1 - p[i]), "1": float(p[i])},
                },
                created_at=start + timedelta(seconds=i),
            )
        )
    log.write(records)
    if labels:
        add_labels(log, [r.id for r in records], frame["Class"])
    return [record.id for record in records]


def add_labels(log: PredictionLog, ids: list[str], labels: pd.Series) -> None:
    """Feedback for many predictions in one transaction (``add_feedback`` does one at a time)."""
    now = datetime.now(UTC)
    rows = [
        {"prediction_id": pid, "label": {"label": int(label)}, "created_at": now}
        for pid, label in zip(ids, labels, strict=True)
    ]
    with log.engine.begin() as connection:
        connection.execute(sa.insert(Feedback), rows)
