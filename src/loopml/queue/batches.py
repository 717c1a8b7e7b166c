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
from loopml.batch.results import count_logged, fetch_scores
from loopml.batch.scoring import batch_id
from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.queue.submit import new_job_id, publish, record_batch_job
from loopml.queue.topology import SCORE_TASK, Topology
from loopml.store.jobs import FAILED, SUCCEEDED, JobStore
from loopml.store.predictions import PredictionLog

Progress = Callable[[int, int], None]


def rows_of(chunk: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-safe lists (missing values as null)."""
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
    pinned = model.resolve(settings)
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
        _wait(jobs, log, job_id, len(frame), progress, poll_seconds, timeout_seconds)
        scored = pd.concat(
            [fetch_scores(log, batch_id(job_id, number), len(chunk)) for number, chunk in parts]
        )
        scored.index = frame.index
        jobs.finish(job_id, SUCCEEDED)
        return job_id, frame.join(scored)
    except BaseException as error:
        jobs.finish(job_id, FAILED, error=f"{type(error).__name__}: {error}")
        raise
    finally:
        jobs.close()
        log.engine.dispose()


def _wait(
    jobs: JobStore,
    log: PredictionLog,
    job_id: str,
    total: int,
    progress: Progress | None,
    poll_seconds: float,
    timeout_seconds: float | None,
) -> None:
    started = time.monotonic()
    done = -1
    while True:
        count = count_logged(log, job_id)
        if count != done:
            done = count
            jobs.progress(job_id, steps_done=done)
            if progress is not None:
                progress(done, total)
        if done >= total:
            return
        job = jobs.get(job_id)
        if job.status == FAILED:
            raise LoopmlError(f"batch scoring job {job_id} failed: {job.error}")
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise LoopmlError(
                f"batch scoring job {job_id}: {done} of {total} predictions logged after "
                f"{timeout_seconds:.0f} s; are inference workers running (`loopml worker "
                "--queues inference`)?"
            )
        time.sleep(poll_seconds)
