"""Scoring a frame through the inference queue: split, publish, wait on the prediction log.

Results come back through the prediction log, not a Celery result backend:
the client counts the job's logged predictions to show progress, then reads
the scores back by their deterministic ids, in row order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from celery import Celery

from loopml.batch.files import chunks
from loopml.batch.models import ModelRef
from loopml.batch.results import count_by_batch, fetch_scores
from loopml.batch.scoring import batch_id
from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue.submit import new_job_id, publish, record_batch_job
from loopml.queue.topology import SCORE_TASK, Topology
from loopml.store.jobs import JobStore
from loopml.store.predictions import PredictionLog

Progress = Callable[[int, int], None]


def rows_of(chunk: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-safe lists (missing values as null)."""
    if chunk.dtypes.nunique() == 1 and not chunk.isna().to_numpy().any():
        return chunk.to_numpy().tolist()  # one dtype, nothing missing: the fast path
    return chunk.astype(object).where(chunk.notna(), None).to_numpy().tolist()


def score_through_queue(
    app: Celery,
    settings: Settings,
    model: ModelRef,
    frame: pd.DataFrame,
    *,
    batch_rows: int,
    progress: Progress | None = None,
    poll_seconds: float = 0.5,
    timeout_seconds: float | None = None,
) -> tuple[str, pd.DataFrame]:
    """Send ``frame`` as batches, wait until every prediction is logged; job id and scored frame."""
    topology: Topology = app.loopml_topology
    pinned = model.pin(settings)
    job_id = new_job_id()
    parts = list(chunks(frame, batch_rows))
    record_batch_job(
        settings,
        topology,
        job_id,
        str(pinned),
        {"rows": len(frame), "batches": len(parts), "model": str(pinned)},
    )
    jobs = JobStore(settings.database)
    log = PredictionLog.open(settings.database)
    try:
        jobs.start_attempt(job_id, "predict-batch client")
        jobs.progress(job_id, steps_total=len(frame), steps_done=0, current_step="scoring")
        columns = [str(c) for c in frame.columns]
        for number, chunk in parts:
            identifier = batch_id(job_id, number)
            publish(
                app,
                SCORE_TASK,
                identifier,
                {
                    "job_id": job_id,
                    "batch_id": identifier,
                    "model": str(pinned),
                    "columns": columns,
                    "rows": rows_of(chunk),
                },
            )
        sizes = {batch_id(job_id, number): len(chunk) for number, chunk in parts}
        results = _collect(jobs, log, job_id, sizes, progress, poll_seconds, timeout_seconds)
        scored = pd.concat([results[batch] for batch in sizes])
        scored.index = frame.index
        jobs.finish(job_id, Status.SUCCEEDED)
        return job_id, frame.join(scored)
    except BaseException as error:
        jobs.finish(job_id, Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        jobs.close()
        log.engine.dispose()


def _collect(
    jobs: JobStore,
    log: PredictionLog,
    job_id: str,
    sizes: dict[str, int],
    progress: Progress | None,
    poll_seconds: float,
    timeout_seconds: float | None,
) -> dict[str, pd.DataFrame]:
    """Each batch's scores, read as soon as the batch is logged, while later ones are scored."""
    started = time.monotonic()
    total = sum(sizes.values())
    pending = dict(sizes)
    results: dict[str, pd.DataFrame] = {}
    reported = -1
    while True:
        counts = count_by_batch(log, list(pending))
        for batch, count in counts.items():
            if count >= pending[batch]:
                results[batch] = fetch_scores(log, batch, pending.pop(batch))
        done = sum(sizes[batch] for batch in results) + sum(counts.get(b, 0) for b in pending)
        if done != reported:
            reported = done
            jobs.progress(job_id, steps_done=done)
            if progress is not None:
                progress(done, total)
        if not pending:
            return results
        job = jobs.get(job_id)
        if job.status in (Status.FAILED, Status.REJECTED):
            raise LoopmlError(f"batch scoring job {job_id} {job.status}: {job.error}")
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise LoopmlError(
                f"batch scoring job {job_id}: {done} of {total} predictions logged after "
                f"{timeout_seconds:.0f} s; are inference workers running (`loopml worker "
                "--queues inference`)?"
            )
        time.sleep(poll_seconds)
