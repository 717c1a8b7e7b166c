"""The ``local`` engine: stream the file chunk by chunk, score and log each in this process."""

from __future__ import annotations

import uuid

import pandas as pd

from loopml.batch.columns import check_columns, signature_columns
from loopml.batch.engines import BatchRequest, BatchResult, Clock, Progress, total_chunks
from loopml.batch.files import ScoredWriter, check_output, chunks, iter_chunks
from loopml.batch.models import LoadedModel, load_model
from loopml.batch.scoring import batch_id, check_skew, score_and_log
from loopml.core.errors import LoopmlError
from loopml.store.batchlog import BatchLog, root_of
from loopml.store.db import connect


def batch_log(request: BatchRequest) -> BatchLog:
    """The batch log of the request's store, under the artifact store."""
    settings = request.settings
    return BatchLog(connect(settings.database), root_of(settings.artifacts, settings.home))


def score_locally(
    model: LoadedModel,
    frame: pd.DataFrame,
    log: BatchLog,
    *,
    batch_rows: int,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> pd.DataFrame:
    """A frame in memory scored chunk by chunk, one segment each; ``frame`` with its scores."""
    run_id = run_id or uuid.uuid4().hex
    # Schema skew anywhere stops the job before its first chunk is written.
    check_skew(model, frame, f"scoring run {run_id}")
    parts = []
    total = -(-len(frame) // batch_rows)
    for number, chunk in chunks(frame, batch_rows):
        scored = score_and_log(model, chunk.reset_index(drop=True), batch_id(run_id, number), log)
        scored.index = chunk.index
        parts.append(scored)
        if progress is not None:
            progress(number + 1, total)
    if not parts:
        return frame.copy()
    return frame.join(pd.concat(parts))


class LocalEngine:
    """Chunked in-process scoring: the anchor every other engine is measured against."""

    name = "local"

    def score(self, request: BatchRequest, progress: Progress | None = None) -> BatchResult:
        settings = request.settings
        pinned = request.model.pin(settings)
        assert pinned.version is not None
        check_output(request.output)
        model = load_model(settings, pinned)
        expected = signature_columns(settings, pinned.name, pinned.version)
        total = total_chunks(request.input, request.batch_rows)
        log = batch_log(request)
        clock = Clock()
        rows = count = 0
        try:
            with ScoredWriter(request.output) as writer:
                for number, chunk in iter_chunks(request.input, request.batch_rows):
                    where = f"{request.input} rows {rows}-{rows + len(chunk) - 1}"
                    check_columns(
                        chunk, expected, f"{where} columns", quote_values=request.quote_values
                    )
                    identifier = batch_id(request.job_id, number)
                    scored = score_and_log(model, chunk, identifier, log)
                    writer.append(chunk.join(scored))
                    rows += len(chunk)
                    count += 1
                    if progress is not None:
                        progress(count, total)
        except (LoopmlError, ValueError, KeyError, TypeError, KeyboardInterrupt):
            # a chunk refused part-way, or Ctrl-C: what earlier chunks logged goes too,
            # nothing half-written
            log.discard(request.job_id)
            raise
        finally:
            log.engine.dispose()
        return BatchResult(
            engine=self.name,
            job_id=request.job_id,
            model=pinned.name,
            version=pinned.version,
            rows=rows,
            chunks=count,
            seconds=clock.seconds(),
            output=str(request.output),
            log=log.root,
        )
