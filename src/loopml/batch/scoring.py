"""Scoring a frame with a registered model and writing every prediction to the prediction log.

The same function serves the inference worker and ``loopml predict-batch``
without ``--queue``. Prediction ids derive from the batch id and the row's
place in it, so a redelivered batch writes the same ids and the log keeps
one row per prediction.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from loopml.batch.models import LoadedModel
from loopml.store.predictions import (
    BATCH,
    PREDICTION,
    PredictionLog,
    PredictionRecord,
    frame_inputs,
    prediction_records,
    value_skew,
)


def prediction_id(batch_id: str, row: int) -> str:
    """The prediction id of row ``row`` of batch ``batch_id``: 32 hex characters."""
    return hashlib.sha256(f"{batch_id}:{row}".encode()).hexdigest()[:32]


def batch_id(job_id: str, number: int) -> str:
    """The batch id of chunk ``number`` of the scoring job ``job_id``."""
    return f"{job_id}-{number:06d}"


def probability_column(label: Any) -> str:
    return f"probability_{label}"


def score_frame(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s predictions: a ``prediction`` column and one probability column per class."""
    labels, probabilities = model.predict(frame)
    scored = pd.DataFrame({PREDICTION: labels}, index=frame.index)
    if probabilities is not None and model.classes is not None:
        for position, label in enumerate(model.classes):
            scored[probability_column(label)] = probabilities[:, position]
    return scored


def check_skew(model: LoadedModel, frame: pd.DataFrame, where: str) -> dict[str, Any] | None:
    """``frame``'s value skew against the model's reference profile, to record on its predictions.

    Schema skew (missing, extra or retyped columns) raises
    :class:`~loopml.core.errors.SkewError` naming every column and ``where``,
    before anything is scored or written. None without a profile or skew.
    """
    if model.checker is None:
        return None
    report = model.checker.check_frame(frame)
    report.raise_for_schema_skew(f"{where} (model {model.name} version {model.version})")
    return value_skew(report)


def score_and_log(
    model: LoadedModel, frame: pd.DataFrame, batch_id: str, log: PredictionLog
) -> pd.DataFrame:
    """Check, score ``frame`` and write each row to ``log`` as batch ``batch_id``; the scores.

    Returns only once the rows are committed: the worker acknowledges the batch
    after that, so a worker killed mid-batch has its batch redelivered, and the
    ids (from the batch id and row) make the second write add nothing twice.
    """
    skew = check_skew(model, frame, f"batch {batch_id}")
    scored = score_frame(model, frame)
    log.write(records(model, frame, scored, batch_id, skew))
    return scored


def records(
    model: LoadedModel,
    frame: pd.DataFrame,
    scored: pd.DataFrame,
    batch_id: str,
    skew: dict[str, Any] | None = None,
) -> list[PredictionRecord]:
    """One prediction-log record per row, inputs as sent and outputs as predicted."""
    probability_columns = [c for c in scored.columns if c != PREDICTION]
    probabilities = (
        np.round(scored[probability_columns].to_numpy(), 6).tolist()
        if probability_columns
        else None
    )
    return prediction_records(
        [prediction_id(batch_id, row) for row in range(len(frame))],
        model.name,
        model.version,
        frame_inputs(frame),
        scored[PREDICTION].tolist(),
        probabilities,
        [str(label) for label in model.classes] if model.classes is not None else None,
        source=BATCH,
        batch_id=batch_id,
        skew=skew,
    )
