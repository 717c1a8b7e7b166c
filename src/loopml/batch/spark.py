"""The ``spark`` engine: ``mlflow.pyfunc.spark_udf`` on a Spark session, segments from executors.

Needs the ``spark`` extra (``pip install 'loopml[spark]'``, PySpark 4.3 on
Java 17). The driver checks the version's trust and the file's schema (a
sample against the model's signature and reference profile) before anything
is written; the executors score each partition with the version's pyfunc,
write its batch-log segment (the same atomic writer as the other engines,
one segment per partition) and the scored rows; the driver then records one
``batch_segments`` row per partition.

Spark's parallelism follows the input's splits: Parquet row groups, or CSV
byte ranges (``spark.sql.files.maxPartitionBytes``, which this engine sets
so a file makes at least a few partitions per core). Output order within
the written part files is the input's order (``part-00000`` holds the first
partition). ``s3://`` paths need the hadoop-aws package on the cluster.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.batch.columns import check_columns, signature_columns
from loopml.batch.engines import BatchRequest, BatchResult, Clock, Progress, total_chunks
from loopml.batch.files import _format, is_remote
from loopml.batch.local import batch_log
from loopml.batch.models import load_model
from loopml.batch.scoring import batch_id, check_skew, id_prefix, prediction_ids
from loopml.core.errors import ConfigError, DataError, InputFileError
from loopml.store import batchlog

SAMPLE_ROWS = 2_000
"""Rows the driver checks for schema skew before any executor writes (Spark's schema is static)."""


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError(
            "the spark engine needs PySpark: pip install 'loopml[spark]' (and Java 17)"
        ) from exc
    return pyspark


def spark_session(master: str | None = None) -> Any:
    """The running Spark session, or a new one on ``master`` (default ``local[*]``).

    The workers run this interpreter (``PYSPARK_PYTHON``) and bind the loopback
    address unless told otherwise (``SPARK_LOCAL_IP``); BLAS/OpenMP threads in
    executors are pinned to one, like every loopml scorer: Spark parallelises
    by task.
    """
    _pyspark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master or "local[*]")
        .appName("loopml-batch")
        .config("spark.ui.enabled", "false")
        # Spark's stage bar redraws with carriage returns: garbage in a pipe or a CI log
        .config("spark.ui.showConsoleProgress", "true" if sys.stderr.isatty() else "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.executorEnv.OMP_NUM_THREADS", "1")
        # Executors unpickle only the copy the driver judged (SparkEngine._run) and shipped.
        .config("spark.executorEnv.MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        .config("spark.executorEnv.OPENBLAS_NUM_THREADS", "1")
    )
    return builder.getOrCreate()


def _result_type(classes: list[Any] | None) -> str:
    """The Spark type of the ``prediction`` column: the labels' type, else a number."""
    if classes is None:
        return "double"
    if all(isinstance(c, bool | int) for c in classes):
        return "long"
    if all(isinstance(c, float) for c in classes):
        return "double"
    return "string"


class SparkEngine:
    """Batch scoring on Spark: local mode by default, ``--master`` for a cluster."""

    name = "spark"

    def score(self, request: BatchRequest, progress: Progress | None = None) -> BatchResult:
        _pyspark()
        settings = request.settings
        pinned = request.model.pin(settings)
        assert pinned.version is not None
        kind = _format(request.input, "input")
        _format(request.output, "output")
        overwrite = bool(request.options.get("overwrite"))
        if not overwrite and not is_remote(request.output) and Path(request.output).exists():
            raise DataError(f"output {request.output} exists; Spark writes a new folder there")
        model = load_model(settings, pinned)  # loopml's trust check, before any unpickling
        expected = signature_columns(settings, pinned.name, pinned.version)
        started = time.perf_counter()
        spark = spark_session(request.master)
        startup = time.perf_counter() - started
        clock = Clock()
        from pyspark.errors import AnalysisException

        try:
            frame = _read(spark, request.input, kind, request.batch_rows)
            sample = frame.limit(SAMPLE_ROWS).toPandas()
        except AnalysisException as exc:  # an empty folder, a path gone: not a stack trace
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputFileError(f"input {request.input}: Spark cannot read it: {reason}") from exc
        where = f"{request.input} (Spark schema {', '.join(frame.columns)})"
        check_columns(sample, expected, f"{where} columns", quote_values=request.quote_values)
        check_skew(model, sample, f"scoring job {request.job_id}, {where}")
        log = batch_log(request)
        try:
            found = self._run(spark, request, model, frame, log.root)
            _record(log, request, model, found)
            if progress is not None:
                progress(len(found), len(found))
        except Exception:
            log.discard(request.job_id)
            raise
        finally:
            log.engine.dispose()
        return BatchResult(
            engine=self.name,
            job_id=request.job_id,
            model=pinned.name,
            version=pinned.version,
            rows=sum(entry["rows"] for entry in found),
            chunks=len(found),
            seconds=clock.seconds(),
            output=str(request.output),
            log=log.root,
            startup_seconds=startup,
        )

    def _run(
        self, spark: Any, request: BatchRequest, model: Any, frame: Any, root: str
    ) -> list[dict[str, Any]]:
        """Score every partition, write the output and one segment per partition; the segments."""
        from pyspark.sql import functions as sql
        from pyspark.sql.types import LongType, StringType, StructField, StructType

        from loopml.registry.loading import judge
        from loopml.registry.models import get_version
        from loopml.registry.tracking import use_tracking
        from loopml.registry.trust import downloaded
        from loopml.store.trust import TrustTable

        settings = request.settings
        mlflow = use_tracking(settings)
        registered = get_version(settings, model.name, model.version)
        columns = list(frame.columns)
        profile = model.profile.to_json() if model.profile is not None else None
        job_id, name, version = request.job_id, model.name, model.version

        def write_segments(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            """In an executor: the partition's segment, written atomically; one summary row."""
            from pyspark import TaskContext

            context = TaskContext.get()
            assert context is not None  # always set inside a Spark task
            partition = context.partitionId()
            parts = list(batches)
            whole = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            if whole.empty:
                return
            identifier = batch_id(job_id, partition)
            skew = _value_skew(profile, whole[columns])
            record = batchlog.SegmentRecord(
                batch_id=identifier,
                model_name=name,
                model_version=version,
                ids=prediction_ids(identifier, len(whole)),
                inputs=whole[columns],
                predictions=whole["prediction"].to_numpy(),
                skew=skew,
            )
            uri = batchlog.segment_uri(root, name, job_id, partition)
            created = datetime.now(UTC)
            batchlog.write_segment(batchlog.segment_table(record, created), uri)
            yield pd.DataFrame(
                {
                    "chunk": [partition],
                    "uri": [uri],
                    "rows": [len(whole)],
                    "skew": [json.dumps(skew) if skew is not None else None],
                    "created_us": [int(created.timestamp() * 1_000_000)],
                }
            )

        summary = StructType(
            [
                StructField("chunk", LongType()),
                StructField("uri", StringType()),
                StructField("rows", LongType()),
                StructField("skew", StringType()),
                StructField("created_us", LongType()),
            ]
        )
        # The version is judged again on the very copy Spark ships to its executors, and
        # pickles are allowed only after that verdict (loopml's trust rules).
        with TrustTable(settings.database) as table, downloaded(settings, registered.uri) as folder:
            judge(settings, registered, folder, table)
            os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
            udf = mlflow.pyfunc.spark_udf(
                spark, str(folder), result_type=_result_type(model.classes), env_manager="local"
            )
            scored = frame.withColumn("prediction", udf(sql.struct(*[sql.col(c) for c in columns])))
            scored = scored.cache()  # one scoring feeds both the output and the segments
            try:
                writer = scored.write.mode(
                    "overwrite" if request.options.get("overwrite") else "errorifexists"
                )
                if request.output.lower().endswith(".csv"):
                    writer.option("header", "true").csv(request.output)
                else:
                    writer.parquet(request.output)
                rows = scored.mapInPandas(write_segments, summary).collect()
            finally:
                scored.unpersist()
        return [
            {
                "chunk": int(row["chunk"]),
                "uri": row["uri"],
                "rows": int(row["rows"]),
                "skew": json.loads(row["skew"]) if row["skew"] else None,
                "created_at": datetime.fromtimestamp(row["created_us"] / 1_000_000, UTC),
            }
            for row in rows
        ]


def _read(spark: Any, path: str, kind: str, batch_rows: int) -> Any:
    """The input as a Spark frame, in partitions of about ``batch_rows`` rows.

    A partition is one segment and is held whole by one Python worker, so its
    size follows the chunk size, not the file's: memory stays flat as files grow,
    and a file still makes at least two partitions per core.
    """
    cores = spark.sparkContext.defaultParallelism
    size = _size(path)
    if size:
        chunks = total_chunks(path, batch_rows) if kind == "parquet" else None
        per_chunk = size // chunks if chunks else 64 << 20
        split = max(1 << 20, min(size // max(2 * cores, 1), per_chunk))
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(split))
        spark.conf.set("spark.sql.files.openCostInBytes", "0")
    if kind == "csv":
        return spark.read.option("header", "true").option("inferSchema", "true").csv(path)
    return spark.read.parquet(path)


def _size(path: str) -> int:
    if is_remote(path):
        return 0
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _value_skew(profile: str | None, frame: pd.DataFrame) -> dict[str, Any] | None:
    if profile is None:
        return None
    from loopml.core.checker import checker_for
    from loopml.core.profile import ReferenceProfile
    from loopml.store.predictions import value_skew

    report = checker_for(ReferenceProfile.from_json(profile)).check_frame(frame)
    return value_skew(report)


def _record(
    log: batchlog.BatchLog, request: BatchRequest, model: Any, found: list[dict[str, Any]]
) -> None:
    """One ``batch_segments`` row per partition the executors wrote, in one transaction."""
    with log.engine.begin() as connection:
        for segment in sorted(found, key=lambda entry: entry["chunk"]):
            identifier = batch_id(request.job_id, segment["chunk"])
            row = {
                "job_id": request.job_id,
                "batch_id": identifier,
                "id_prefix": id_prefix(identifier),
                "model_name": model.name,
                "model_version": model.version,
                **segment,
            }
            connection.execute(batchlog.upsert(log.engine, row))
