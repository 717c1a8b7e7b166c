"""The ``queue`` engine: split the file, publish chunks, collect each chunk's logged segment.

Results come back through the batch log, not a Celery result backend: a
chunk is done when its ``batch_segments`` row exists; the client reads the
segment's outputs back (in chunk order) and appends them to the output. The
file is streamed: chunks are published as they are read, and scores are
written as soon as the next chunk in order is logged.

By default a message carries its rows (JSON). With ``by_reference`` (Parquet
input reachable by the workers: a shared disk or ``s3://``) a message carries
only the file and the row range, and the worker reads the rows itself, which
saves serialising every input value twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from celery import Celery

from loopml.batch.columns import check_columns, signature_columns
from loopml.batch.engines import BatchRequest, BatchResult, Clock, Progress, total_chunks
from loopml.batch.files import ScoredWriter, check_output, is_remote, iter_chunks
from loopml.batch.local import batch_log
from loopml.batch.models import ModelRef
from loopml.batch.scoring import batch_id, check_skew
from loopml.core.errors import LoopmlError, ModelLoadError, UntrustedModelError
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue.submit import publish, record_batch_job
from loopml.queue.topology import SCORE_TASK, Topology
from loopml.store import batchlog
from loopml.store.batchlog import BatchLog
from loopml.store.jobs import JobStore


def score_through_queue(
    app: Celery,
    settings: Settings,
    model: ModelRef,
    frame: pd.DataFrame,
    *,
    batch_rows: int,
    progress: Progress | None = None,
    timeout_seconds: float | None = None,
    by_reference: bool = False,
) -> tuple[str, pd.DataFrame]:
    """A frame in memory scored by the queue engine (through a temp Parquet file); job id, scores.

    ``by_reference`` needs the workers to share this machine's temp folder.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="loopml-batch-") as folder:
        source, target = Path(folder) / "rows.parquet", Path(folder) / "scored.parquet"
        frame.reset_index(drop=True).to_parquet(source, row_group_size=batch_rows)
        request = BatchRequest(
            settings=settings,
            model=model,
            input=str(source),
            output=str(target),
            batch_rows=batch_rows,
            timeout_seconds=timeout_seconds,
            options={"by_reference": by_reference},
        )
        result = QueueEngine(app).score(request, progress)
        scored = pd.read_parquet(target)
    scored.index = frame.index
    return result.job_id, scored


def _reject(
    settings: Settings, topology: Topology, job_id: str, model: str, error: Exception
) -> None:
    """Record the job as rejected with the reason: the client refused the version itself."""
    record_batch_job(settings, topology, job_id, model, {"model": model})
    jobs = JobStore(settings.database)
    try:
        jobs.finish(job_id, Status.REJECTED, error=str(error))
    finally:
        jobs.close()


def rows_of(chunk: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-safe lists (missing values as null)."""
    if chunk.dtypes.nunique() == 1 and not chunk.isna().to_numpy().any():
        return chunk.to_numpy().tolist()  # one dtype, nothing missing: the fast path
    return chunk.astype(object).where(chunk.notna(), None).to_numpy().tolist()


class QueueEngine:
    """Scoring on inference workers (``loopml worker --queues inference``)."""

    name = "queue"

    def __init__(self, app: Celery | None = None) -> None:
        self.app = app

    def score(self, request: BatchRequest, progress: Progress | None = None) -> BatchResult:
        from loopml.batch.models import load_model
        from loopml.queue import make_app

        settings = request.settings
        app = self.app or make_app(settings)
        topology: Topology = app.loopml_topology
        pinned = request.model.pin(settings)
        assert pinned.version is not None
        check_output(request.output)
        # The client checks each chunk before publishing it: a file with schema skew is
        # refused before a worker writes anything (the workers check again).
        try:
            model = load_model(settings, pinned)
        except (UntrustedModelError, ModelLoadError) as error:
            _reject(settings, topology, request.job_id, str(pinned), error)
            raise
        expected = signature_columns(settings, pinned.name, pinned.version)
        # an s3:// Parquet file is where every worker can read it: send row ranges
        by_reference = bool(request.options.get("by_reference")) or (
            is_remote(request.input) and total_chunks(request.input, 1) is not None
        )
        most_in_flight = int(request.options.get("in_flight", 16))
        total = total_chunks(request.input, request.batch_rows)
        record_batch_job(
            settings,
            topology,
            request.job_id,
            str(pinned),
            {"input": str(request.input), "model": str(pinned), "batch_rows": request.batch_rows},
        )
        jobs = JobStore(settings.database)
        log = batch_log(request)
        clock = Clock()
        sizes: dict[int, int] = {}
        try:
            if jobs.get(request.job_id).status != Status.RUNNING:  # else a worker runs the job
                jobs.start_attempt(request.job_id, "predict-batch client")
            jobs.progress(request.job_id, steps_total=total, steps_done=0, current_step="scoring")
            # Parquet columns have one type each, so its first chunk stands for the file;
            # a CSV chunk can bring a new type anywhere, so every chunk is read first.
            for number, chunk in iter_chunks(request.input, request.batch_rows):
                start = request.batch_rows * number
                where = f"{request.input} rows {start}-{start + len(chunk) - 1}"
                check_columns(
                    chunk, expected, f"{where} columns", quote_values=request.quote_values
                )
                check_skew(model, chunk, f"scoring job {request.job_id}, {where}")
                if total is not None:
                    break
            with ScoredWriter(request.output) as writer:
                collector = _Collector(request, jobs, log, writer, progress, total)
                for number, chunk in iter_chunks(request.input, request.batch_rows):
                    body: dict[str, Any] = {
                        "job_id": request.job_id,
                        "batch_id": batch_id(request.job_id, number),
                        "model": str(pinned),
                        "columns": [str(c) for c in chunk.columns],
                    }
                    if by_reference:
                        body["source"] = {
                            "uri": str(request.input),
                            "start": request.batch_rows * number,
                            "rows": len(chunk),
                        }
                    else:
                        body["rows"] = rows_of(chunk)
                    publish(app, SCORE_TASK, body["batch_id"], body)
                    collector.sizes[number] = len(chunk)
                    collector.pending[number] = chunk
                    collector.wait(most_in_flight)
                collector.wait(0)
                sizes = collector.sizes
            jobs.finish(request.job_id, Status.SUCCEEDED)
        except BaseException as error:
            jobs.finish(request.job_id, Status.FAILED, error=f"{type(error).__name__}: {error}")
            raise
        finally:
            jobs.close()
            log.engine.dispose()
        return BatchResult(
            engine=self.name,
            job_id=request.job_id,
            model=pinned.name,
            version=pinned.version,
            rows=sum(sizes.values()),
            chunks=len(sizes),
            seconds=clock.seconds(),
            output=str(request.output),
            log=log.root,
        )


class _Collector:
    """Appends each chunk's scores in order as soon as its segment is logged."""

    def __init__(
        self,
        request: BatchRequest,
        jobs: JobStore,
        log: BatchLog,
        writer: ScoredWriter,
        progress: Progress | None,
        total: int | None,
    ) -> None:
        self.request = request
        self.jobs = jobs
        self.log = log
        self.writer = writer
        self.progress = progress
        self.total = total
        self.sizes: dict[int, int] = {}
        self.pending: dict[int, pd.DataFrame] = {}
        """Published chunks not yet written: their inputs join the scores read back."""
        self.next_chunk = 0
        self.started = time.monotonic()

    @property
    def in_flight(self) -> int:
        return len(self.sizes) - self.next_chunk

    def poll(self) -> None:
        """Write every chunk logged so far that is next in order; raise if the job failed."""
        before = self.next_chunk
        logged = {
            row.chunk: row
            for row in batchlog.segments(self.log.engine, job_id=self.request.job_id)
            if row.chunk >= self.next_chunk
        }
        while self.next_chunk in logged and self.next_chunk in self.sizes:
            self._append(logged.pop(self.next_chunk))
            self.next_chunk += 1
        if self.next_chunk != before:
            self.jobs.progress(self.request.job_id, steps_done=self.next_chunk)
            if self.progress is not None:
                self.progress(self.next_chunk, self.total)
            return
        job = self.jobs.get(self.request.job_id)
        if job.status in (Status.FAILED, Status.REJECTED):
            raise LoopmlError(f"batch scoring job {self.request.job_id} {job.status}: {job.error}")
        timeout = self.request.timeout_seconds
        if timeout is not None and time.monotonic() - self.started > timeout:
            raise LoopmlError(
                f"batch scoring job {self.request.job_id}: {self.next_chunk} of "
                f"{len(self.sizes)} chunks logged after {timeout:.0f} s; are inference workers "
                "running (`loopml worker --queues inference`)?"
            )

    def wait(self, most_in_flight: int, poll_seconds: float = 0.1) -> None:
        """Poll until at most ``most_in_flight`` published chunks are not yet written."""
        while self.in_flight > most_in_flight:
            done = self.next_chunk
            self.poll()
            if self.next_chunk == done:
                time.sleep(poll_seconds)

    def _append(self, row: Any) -> None:
        inputs = self.pending.pop(row.chunk)
        table = batchlog.read_outputs(row.uri)  # the inputs are still here, in memory
        if table.num_rows != len(inputs):
            raise LoopmlError(
                f"batch {row.batch_id}: its segment holds {table.num_rows} rows, "
                f"the chunk has {len(inputs)}"
            )
        scores = batchlog.score_columns(table)
        scores.index = inputs.index
        self.writer.append(inputs.join(scores))
