"""Scoring a frame with a registered model and logging it as one batch-log segment.

The same function serves the inference worker and the local engine of
``loopml predict-batch``. Prediction ids derive from the batch id and the
row's place in it, so a redelivered batch writes the same ids into the same
segment and the log keeps one row per prediction.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.batch.models import LoadedModel
from loopml.store.batchlog import BatchLog, SegmentRecord
from loopml.store.predictions import PREDICTION, value_skew


def id_prefix(batch_id: str) -> str:
    """The first 20 hex digits of SHA-256 of the batch id: every id of the batch starts so."""
    return hashlib.sha256(batch_id.encode()).hexdigest()[:20]


def prediction_id(batch_id: str, row: int) -> str:
    """The prediction id of row ``row`` of batch ``batch_id``: 32 characters, all hex digits.

    The batch's :func:`id_prefix` then the row as 12 decimal digits, so the ids of a
    chunk are made in one vectorised step (:func:`prediction_ids`) and an id names its
    batch: feedback finds a batch-scored prediction's segment from the id alone.
    """
    return f"{id_prefix(batch_id)}{row:012d}"


def prediction_ids(batch_id: str, rows: int) -> pa.Array:
    """The ids of rows ``0 .. rows - 1`` of batch ``batch_id`` (as :func:`prediction_id`)."""
    import pyarrow.compute as pc

    numbers = pc.utf8_lpad(pa.array(np.arange(rows, dtype=np.int64)).cast(pa.string()), 12, "0")
    return pc.binary_join_element_wise(id_prefix(batch_id), numbers, "")


def batch_id(job_id: str, number: int) -> str:
    """The batch id of chunk ``number`` of the scoring job ``job_id``."""
    return f"{job_id}-{number:06d}"


def probability_column(label: Any) -> str:
    return f"probability_{label}"


def score_frame(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s predictions: a ``prediction`` column and one probability column per class."""
    labels, probabilities = model.predict(frame)
    return scores_of(model, frame.index, labels, probabilities)


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
    model: LoadedModel, frame: pd.DataFrame, batch_id: str, log: BatchLog
) -> pd.DataFrame:
    """Check, score ``frame`` and log it as batch ``batch_id``: one segment, one row; the scores.

    Returns only once the segment and its row are written: the worker
    acknowledges the batch after that, so a worker killed mid-batch has its
    batch redelivered, and the second write replaces the first (same segment
    name, same (job, chunk) row), never adding a chunk twice.
    """
    skew = check_skew(model, frame, f"batch {batch_id}")
    labels, probabilities = model.predict(frame)
    log.record(
        SegmentRecord(
            batch_id=batch_id,
            model_name=model.name,
            model_version=model.version,
            ids=prediction_ids(batch_id, len(frame)),
            inputs=frame,
            predictions=labels,
            probabilities=probabilities if model.classes is not None else None,
            classes=[str(c) for c in model.classes] if model.classes is not None else None,
            skew=skew,
        )
    )
    return scores_of(model, frame.index, labels, probabilities)


def scores_of(
    model: LoadedModel, index: pd.Index, labels: Any, probabilities: np.ndarray | None
) -> pd.DataFrame:
    """The scored columns: ``prediction`` and one ``probability_<class>`` per class."""
    scored = pd.DataFrame({PREDICTION: labels}, index=index)
    if probabilities is not None and model.classes is not None:
        for position, label in enumerate(model.classes):
            scored[probability_column(label)] = probabilities[:, position]
    return scored
