"""Scoring a frame with a registered model and writing every prediction to the prediction log.

The same function serves the inference worker and ``loopml predict-batch``
without ``--queue``. Prediction ids derive from the batch id and the row's
place in it, so a redelivered batch writes the same ids and the log keeps
one row per prediction.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml.batch.models import LoadedModel
from loopml.store.bulk import PredictionRow, copy_predictions, supports_copy
from loopml.store.predictions import BATCH, PredictionLog, PredictionRecord

PREDICTION = "prediction"


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
    if not report.value_issues:
        return None
    return {
        "rows": report.rows,
        "value_issues": [issue.to_dict() for issue in report.value_issues],
    }


def score_and_log(
    model: LoadedModel, frame: pd.DataFrame, batch_id: str, log: PredictionLog
) -> pd.DataFrame:
    """Check, score ``frame`` and write each row to ``log`` as batch ``batch_id``; the scores."""
    skew = check_skew(model, frame, f"batch {batch_id}")
    scored = score_frame(model, frame)
    if supports_copy(log.engine):
        copy_predictions(log.engine, copy_rows(model, frame, scored, batch_id, skew))
    else:
        log.write(records(model, frame, scored, batch_id, skew))
    return scored


def copy_rows(
    model: LoadedModel,
    frame: pd.DataFrame,
    scored: pd.DataFrame,
    batch_id: str,
    skew: dict[str, Any] | None = None,
) -> list[PredictionRow]:
    """The same rows as :func:`records`, with inputs and outputs already as JSON text.

    pandas writes the inputs' JSON in C, which matters at a hundred thousand rows.
    """
    now = datetime.now(UTC)
    inputs = (
        frame.to_json(orient="records", lines=True, double_precision=15).splitlines()
        if len(frame)
        else []
    )
    labels = scored[PREDICTION].tolist()
    probability_columns = [c for c in scored.columns if c != PREDICTION]
    classes = [str(label) for label in model.classes or []]
    probabilities = (
        np.round(scored[probability_columns].to_numpy(), 6).tolist()
        if probability_columns
        else None
    )
    skew_text = None if skew is None else json.dumps(skew)
    rows: list[PredictionRow] = []
    for row, (values, label) in enumerate(zip(inputs, labels, strict=True)):
        outputs: dict[str, Any] = {PREDICTION: label}
        if probabilities is not None:
            outputs["probabilities"] = dict(zip(classes, probabilities[row], strict=True))
        rows.append(
            (
                prediction_id(batch_id, row),
                now,
                model.name,
                model.version,
                BATCH,
                batch_id,
                values,
                json.dumps(outputs),
                skew_text,
            )
        )
    return rows


def records(
    model: LoadedModel,
    frame: pd.DataFrame,
    scored: pd.DataFrame,
    batch_id: str,
    skew: dict[str, Any] | None = None,
) -> list[PredictionRecord]:
    """One prediction-log record per row, inputs as sent and outputs as predicted."""
    now = datetime.now(UTC)
    inputs = [_clean(row) for row in frame.to_dict(orient="records")]
    labels = scored[PREDICTION].tolist()
    probability_columns = [c for c in scored.columns if c != PREDICTION]
    probabilities = (
        np.round(scored[probability_columns].to_numpy(), 6).tolist()
        if probability_columns
        else None
    )
    classes = [str(label) for label in model.classes or []]
    made = []
    for row, (values, label) in enumerate(zip(inputs, labels, strict=True)):
        outputs: dict[str, Any] = {PREDICTION: label}
        if probabilities is not None:
            outputs["probabilities"] = dict(zip(classes, probabilities[row], strict=True))
        made.append(
            PredictionRecord(
                id=prediction_id(batch_id, row),
                model_name=model.name,
                model_version=model.version,
                inputs=values,
                outputs=outputs,
                created_at=now,
                source=BATCH,
                batch_id=batch_id,
                skew=skew,
            )
        )
    return made


def _clean(row: dict[Any, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN becomes null, numpy scalars become Python ones."""
    cleaned: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None
        cleaned[str(key)] = value
    return cleaned
