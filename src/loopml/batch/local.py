"""Scoring a whole frame in this process, chunk by chunk, logging every prediction."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pandas as pd

from loopml.batch.files import chunks
from loopml.batch.models import LoadedModel
from loopml.batch.scoring import batch_id, check_skew, score_and_log
from loopml.store.predictions import PredictionLog

Progress = Callable[[int, int], None]


def score_locally(
    model: LoadedModel,
    frame: pd.DataFrame,
    log: PredictionLog,
    *,
    batch_rows: int,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> pd.DataFrame:
    """``frame`` with its score columns added; ``progress(done, total)`` after each chunk."""
    run_id = run_id or uuid.uuid4().hex
    # Schema skew anywhere stops the job before its first chunk is written.
    check_skew(model, frame, f"scoring run {run_id}")
    parts = []
    done = 0
    for number, chunk in chunks(frame, batch_rows):
        scored = score_and_log(model, chunk.reset_index(drop=True), batch_id(run_id, number), log)
        scored.index = chunk.index
        parts.append(scored)
        done += len(chunk)
        if progress is not None:
            progress(done, len(frame))
    if not parts:
        return frame.copy()
    return frame.join(pd.concat(parts))
