"""Reading a batch job back from the batch log: how many predictions it logged, and its ids."""

from __future__ import annotations

import pyarrow as pa

from loopml.store import batchlog
from loopml.store.predictions import PredictionLog


def count_logged(log: PredictionLog, job_id: str) -> int:
    """How many predictions the job's segments hold, by their SQL rows (no file is read)."""
    return sum(row.rows for row in batchlog.segments(log.engine, job_id=job_id))


def logged_ids(log: PredictionLog, job_id: str) -> pa.ChunkedArray:
    """Every prediction id in the job's segments, read from the files (for audits and tests)."""
    tables = [
        batchlog.read_segment(row.uri, ["prediction_id"]).column("prediction_id")
        for row in batchlog.segments(log.engine, job_id=job_id)
    ]
    chunks = [chunk for column in tables for chunk in column.chunks]
    return pa.chunked_array(chunks, pa.string())
