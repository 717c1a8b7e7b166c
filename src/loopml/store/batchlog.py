"""The columnar batch log: one Parquet segment and one SQL row per scored chunk.

A batch's inputs already live in a file, so copying every row into SQL (the
online path's shape) cost ~30x the prediction itself. A scored chunk is
logged as what it is: one Parquet segment under the artifact store (local
folder or ``s3://``) holding the prediction ids, outputs, probabilities and
inputs, plus one ``batch_segments`` row pointing at it. The segment is written
first and atomically (a temp name then ``os.replace`` locally; one ``put`` on
S3), the row second, both keyed by (job, chunk): a worker killed before the row
leaves an orphan file that the redelivered chunk overwrites, and a redelivery
after the row overwrites both, so a chunk is never logged twice.

Readers (monitoring windows, ``loopml monitor``, ``/feedback``) see segments
through :class:`~loopml.store.predictions.PredictionLog`, merged with the SQL
rows of online predictions into one log.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from loopml.core.errors import StoreError
from loopml.store.tables import Base

INPUT_PREFIX = "input:"
"""Input columns are stored as ``input:<name>`` so no input can clash with a log column."""
PROBABILITY_PREFIX = "probability:"
ID_PREFIX = 20
"""Batch prediction ids are a 20-character prefix naming the chunk, then the row."""
LOG_FIELDS = ("prediction_id", "created_at", "model_version", "batch_id", "prediction")


class BatchSegment(Base):
    """One scored chunk of a batch job: where its Parquet segment is, and what it holds."""

    __tablename__ = "batch_segments"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    id_prefix: Mapped[str] = mapped_column(String(20), index=True)
    """What every prediction id of the chunk starts with (``loopml.batch.scoring.id_prefix``)."""
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    model_version: Mapped[str] = mapped_column(String(32))
    uri: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    skew: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(index=True)


def split_batch_id(batch_id: str) -> tuple[str, int]:
    """``(job id, chunk number)`` of a chunk's batch id ``<job>-<NNNNNN>`` (chunk 0 otherwise)."""
    job, _, number = batch_id.rpartition("-")
    if job and number.isdigit():
        return job, int(number)
    return batch_id, 0


def root_of(artifacts: str | None, home: Path) -> str:
    """Where segments go: ``batch-log`` under the artifact store, else under ``home``."""
    base = artifacts or home.as_uri()
    return base.rstrip("/") + "/batch-log"


def segment_uri(root: str, model_name: str, job_id: str, chunk: int) -> str:
    """The one place a chunk's segment lives: a redelivery writes the same name."""
    return f"{root.rstrip('/')}/{model_name}/{job_id}/chunk-{chunk:06d}.parquet"


@dataclass(frozen=True)
class SegmentRecord:
    """A chunk to log: its ids, inputs and outputs, with its model version."""

    batch_id: str
    model_name: str
    model_version: str
    ids: Sequence[str] | pa.Array
    """The chunk's prediction ids, all starting with the same 20-character prefix."""
    inputs: pd.DataFrame
    predictions: Sequence[Any] | np.ndarray
    probabilities: np.ndarray | None = None
    classes: Sequence[Any] | None = None
    skew: dict[str, Any] | None = None
    created_at: datetime | None = None


def segment_table(record: SegmentRecord, created_at: datetime) -> pa.Table:
    """The Parquet table of one chunk (log columns, ``probability:<class>``, ``input:<name>``)."""
    rows = len(record.ids)
    columns: dict[str, Any] = {
        "prediction_id": record.ids
        if isinstance(record.ids, pa.Array)
        else pa.array(record.ids, pa.string()),
        "created_at": pa.array(np.full(rows, _micros(created_at)), pa.timestamp("us", tz="UTC")),
        "model_version": pa.array([record.model_version] * rows, pa.string()).dictionary_encode(),
        "batch_id": pa.array([record.batch_id] * rows, pa.string()).dictionary_encode(),
        "prediction": _array(record.predictions),
    }
    if record.probabilities is not None and record.classes is not None:
        for position, label in enumerate(record.classes):
            columns[f"{PROBABILITY_PREFIX}{label}"] = pa.array(
                np.asarray(record.probabilities[:, position], dtype=np.float64)
            )
    inputs = pa.Table.from_pandas(record.inputs.reset_index(drop=True), preserve_index=False)
    for name, column in zip(inputs.column_names, inputs.columns, strict=True):
        columns[f"{INPUT_PREFIX}{name}"] = column
    return pa.table(columns)


def _first(ids: Sequence[str] | pa.Array) -> str:
    if len(ids) == 0:
        return ""
    first = ids[0]
    return str(first.as_py() if isinstance(first, pa.Scalar) else first)


def _array(values: Any) -> pa.Array:
    array = np.asarray(values)
    if array.dtype == object:
        return pa.array([None if v is None else v for v in array.tolist()])
    return pa.array(array)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def write_segment(table: pa.Table, uri: str) -> None:
    """Write ``table`` to ``uri`` so readers see the whole segment or none of it.

    Locally: a temp file in the same folder, fsync, then ``os.replace`` (atomic
    on one filesystem). Elsewhere (``s3://``): the segment is serialised in
    memory and sent as one put, which S3 makes visible only when complete.
    """
    import pyarrow.fs as pafs

    sink = pa.BufferOutputStream()
    # lz4, dictionaries only where values repeat, statistics only for time: random floats
    # and hashed ids gain nothing from either, and writing them cost more than predicting
    pq.write_table(
        table,
        sink,
        compression="lz4",
        use_dictionary=["model_version", "batch_id"],
        write_statistics=["created_at"],
    )
    data = sink.getvalue()
    filesystem, path = pafs.FileSystem.from_uri(uri)
    if isinstance(filesystem, pafs.LocalFileSystem):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with temp.open("wb") as handle:
                handle.write(memoryview(data))
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(target)  # atomic on one filesystem (os.replace)
        finally:
            temp.unlink(missing_ok=True)
        return
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)


def read_segment(uri: str, columns: Sequence[str] | None = None) -> pa.Table:
    """One segment (or some of its columns); a clear error when it is gone."""
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        return pq.read_table(
            path, filesystem=filesystem, columns=list(columns) if columns else None
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"batch log segment {uri} cannot be read: {exc}") from exc


def read_outputs(uri: str) -> pa.Table:
    """A segment's log and output columns, without its inputs (read from its schema first)."""
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        names = pq.read_schema(path, filesystem=filesystem).names
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"batch log segment {uri} cannot be read: {exc}") from exc
    return read_segment(uri, [name for name in names if not name.startswith(INPUT_PREFIX)])


def delete_segment(uri: str) -> None:
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    with contextlib.suppress(OSError):  # already gone: nothing to delete
        filesystem.delete_file(path)


def log_frame(table: pa.Table) -> pd.DataFrame:
    """A segment as the prediction log's frame shape (inputs, ids, times, outputs)."""
    names = table.column_names
    frame = pd.DataFrame(
        {
            name.removeprefix(INPUT_PREFIX): table.column(name).to_pandas()
            for name in names
            if name.startswith(INPUT_PREFIX)
        }
    )
    frame["prediction_id"] = table.column("prediction_id").to_pandas()
    frame["created_at"] = table.column("created_at").to_pandas()
    frame["model_version"] = table.column("model_version").to_pandas().astype(str)
    frame["prediction"] = table.column("prediction").to_pandas()
    labels = [n.removeprefix(PROBABILITY_PREFIX) for n in names if n.startswith(PROBABILITY_PREFIX)]
    if labels:
        matrix = np.column_stack(
            [table.column(PROBABILITY_PREFIX + label).to_numpy() for label in labels]
        )
        probabilities: list[Any] = [dict(zip(labels, r, strict=True)) for r in matrix.tolist()]
        frame["probabilities"] = pd.Series(probabilities, index=frame.index, dtype=object)
    else:
        frame["probabilities"] = None
    return frame


def score_columns(table: pa.Table) -> pd.DataFrame:
    """A segment's outputs as the scored file's columns (``prediction``, ``probability_<c>``)."""
    scored = pd.DataFrame({"prediction": table.column("prediction").to_pandas()})
    for name in table.column_names:
        if name.startswith(PROBABILITY_PREFIX):
            label = name.removeprefix(PROBABILITY_PREFIX)
            scored[f"probability_{label}"] = table.column(name).to_numpy()
    return scored


class BatchLog:
    """The ``batch_segments`` rows of a store and the segments they point at."""

    def __init__(self, engine: Engine, root: str) -> None:
        self.engine = engine
        self.root = root

    @classmethod
    def open(cls, url: str, root: str) -> BatchLog:
        """The batch log of the store at ``url`` (migrated), segments under ``root``."""
        from loopml.store.db import connect

        return cls(connect(url), root)

    def record(self, record: SegmentRecord) -> int:
        """Write the chunk's segment, then upsert its row; how many rows it logged."""
        job_id, chunk = split_batch_id(record.batch_id)
        created_at = record.created_at or datetime.now(UTC)
        uri = segment_uri(self.root, record.model_name, job_id, chunk)
        write_segment(segment_table(record, created_at), uri)
        row = {
            "job_id": job_id,
            "chunk": chunk,
            "batch_id": record.batch_id,
            "id_prefix": _first(record.ids)[:ID_PREFIX],
            "model_name": record.model_name,
            "model_version": record.model_version,
            "uri": uri,
            "rows": len(record.ids),
            "skew": record.skew,
            "created_at": created_at,
        }
        with self.engine.begin() as connection:
            connection.execute(upsert(self.engine, row))
        return len(record.ids)

    def discard(self, job_id: str) -> int:
        """Remove a job's segments and rows (a job refused part-way leaves nothing)."""
        table = BatchSegment.__table__
        with self.engine.begin() as connection:
            uris = [
                row[0]
                for row in connection.execute(
                    sa.select(table.c.uri).where(table.c.job_id == job_id)
                )
            ]
            connection.execute(sa.delete(BatchSegment).where(BatchSegment.job_id == job_id))
        for uri in uris:
            delete_segment(uri)
        return len(uris)


def upsert(engine: Engine, row: dict[str, Any]) -> Any:
    keys = ["job_id", "chunk"]
    changed = {k: v for k, v in row.items() if k not in keys}
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return (
            pg_insert(BatchSegment)
            .values(row)
            .on_conflict_do_update(index_elements=keys, set_=changed)
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (
        sqlite_insert(BatchSegment)
        .values(row)
        .on_conflict_do_update(index_elements=keys, set_=changed)
    )


def segments(
    engine: Engine,
    *,
    model_name: str | None = None,
    batch_id: str | None = None,
    job_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[sa.Row[Any]]:
    """The segment rows matching the filters, in time then (job, chunk) order."""
    table = BatchSegment.__table__
    query = sa.select(table)
    if model_name is not None:
        query = query.where(table.c.model_name == model_name)
    if batch_id is not None:
        query = query.where(table.c.batch_id == batch_id)
    if job_id is not None:
        query = query.where(table.c.job_id == job_id)
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    query = query.order_by(table.c.created_at, table.c.job_id, table.c.chunk)
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def logged_rows(
    engine: Engine,
    *,
    model_name: str | None = None,
    batch_id: str | None = None,
    job_id: str | None = None,
) -> int:
    """How many predictions the batch segments hold (by their rows, not by reading files)."""
    table = BatchSegment.__table__
    query = sa.select(sa.func.coalesce(sa.func.sum(table.c.rows), 0))
    if model_name is not None:
        query = query.where(table.c.model_name == model_name)
    if batch_id is not None:
        query = query.where(table.c.batch_id == batch_id)
    if job_id is not None:
        query = query.where(table.c.job_id == job_id)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def versions_of(engine: Engine, prediction_ids: Sequence[str]) -> dict[str, str]:
    """The model version of each of ``prediction_ids`` found in a batch segment.

    An id's first 20 characters name its chunk (``batch_segments.id_prefix``), so only
    the segments of those chunks are read, and of them only the id column.
    """
    import pyarrow.compute as pc

    by_prefix: dict[str, list[str]] = {}
    for identifier in set(prediction_ids):
        by_prefix.setdefault(identifier[:ID_PREFIX], []).append(identifier)
    found: dict[str, str] = {}
    table = BatchSegment.__table__
    prefixes = sorted(by_prefix)
    for start in range(0, len(prefixes), 1_000):
        query = sa.select(table.c.id_prefix, table.c.uri, table.c.model_version).where(
            table.c.id_prefix.in_(prefixes[start : start + 1_000])
        )
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        for prefix, uri, version in rows:
            wanted = pa.array(by_prefix[prefix], pa.string())
            ids = read_segment(uri, ["prediction_id"]).column("prediction_id")
            for identifier in ids.filter(pc.is_in(ids, value_set=wanted)).to_pylist():
                found[identifier] = version
    return found


def frames(rows: Sequence[sa.Row[Any]]) -> Iterator[pd.DataFrame]:
    """Each segment of ``rows`` as a prediction-log frame, in the given order."""
    for row in rows:
        yield log_frame(read_segment(row.uri))
