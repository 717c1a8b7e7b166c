"""200,000 rows scored by every engine (local, queue, spark) alike, every prediction id once in
the batch log; a redelivered chunk and a worker killed mid-batch leave no duplicates, no gaps."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.batch import ModelRef, load_model
from loopml.batch.engines import BatchRequest, get_engine
from loopml.batch.results import count_logged, logged_ids
from loopml.batch.scoring import batch_id, prediction_id
from loopml.core.spec import parse_spec
from loopml.core.status import Status
from loopml.engine import run_pipeline
from loopml.queue.batches import rows_of, score_through_queue
from loopml.queue.submit import publish
from loopml.queue.topology import SCORE_TASK
from loopml.store import batchlog
from loopml.store.predictions import PredictionLog
from tests.queue.conftest import Stack
from tests.queue.helpers import EXAMPLES, wait_for, write_spec

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def champion(rabbit_stack: Stack) -> str:
    """A registered model, trained in this process into the stack's MLflow on PostgreSQL."""
    name = f"batch_{uuid.uuid4().hex[:6]}"
    spec = write_spec(rabbit_stack.folder, rabbit_stack.data, name)
    run_pipeline(parse_spec(spec.read_text(), source=spec), rabbit_stack.settings)
    return name


def _frame(rows: int) -> Any:
    sys.path.insert(0, str(EXAMPLES))
    from make_creditcard import make_creditcard

    return make_creditcard(rows, seed=77).drop(columns=["Class"])


ROWS = 200_000


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The one 200,000-row file every engine scores (row groups of 20,000: Spark's splits)."""
    frame = _frame(ROWS)
    path = tmp_path_factory.mktemp("rows") / "rows.parquet"
    frame.to_parquet(path, row_group_size=20_000)
    return path, frame


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    """One local Spark session for the module: starting one costs ~20 s."""
    pytest.importorskip("pyspark", reason="the spark extra: pip install 'loopml[spark]'")
    from loopml.batch.spark import spark_session as start

    session = start("local[2]")
    yield session
    session.stop()


def _ids(log: PredictionLog, job_id: str) -> list[str]:
    return logged_ids(log, job_id).to_pylist()


@pytest.mark.slow
def test_every_engine_scores_the_same_200k_rows_alike_each_id_logged_once(
    rabbit_stack: Stack,
    champion: str,
    rows_file: tuple[Path, Any],
    spark_session: Any,
    tmp_path: Path,
) -> None:
    stack = rabbit_stack
    stack.ensure_workers(2)
    source, frame = rows_file
    model = load_model(stack.settings, ModelRef.parse(f"{champion}/1"))
    anchor, _ = model.predict(frame)
    log = PredictionLog.open(stack.settings.database)
    outputs: dict[str, Any] = {}
    try:
        for engine in ("local", "queue", "spark"):
            seen: list[tuple[int, int | None]] = []
            request = BatchRequest(
                settings=stack.settings,
                model=ModelRef.parse(f"{champion}@champion"),
                input=str(source),
                output=str(tmp_path / f"{engine}.parquet"),
                batch_rows=20_000,
                timeout_seconds=400,
            )
            result = get_engine(engine).score(request, lambda d, t, into=seen: into.append((d, t)))
            assert result.rows == ROWS and result.version == "1"
            assert seen and seen[-1][0] == seen[-1][1] == result.chunks
            ids = _ids(log, result.job_id)
            assert len(ids) == ROWS and len(set(ids)) == ROWS  # every id once, none twice
            assert count_logged(log, result.job_id) == ROWS
            outputs[engine] = _read_output(request.output)
        for engine, scored in outputs.items():
            assert len(scored) == ROWS, engine
            assert np.array_equal(scored["prediction"].to_numpy(), anchor), engine
            assert scored["V7"].to_numpy() == pytest.approx(frame["V7"].to_numpy()), engine
        assert outputs["queue"]["probability_1"].equals(outputs["local"]["probability_1"])
        job = next(j for j in stack.jobs().list(limit=5) if j.kind == "batch")
        assert job.status == Status.SUCCEEDED and job.steps_done == job.steps_total == 10
    finally:
        log.engine.dispose()


@pytest.mark.slow
def test_spark_refuses_schema_skew_before_writing_anything(
    rabbit_stack: Stack, champion: str, spark_session: Any, tmp_path: Path
) -> None:
    from loopml.core.errors import InputError, SkewError

    source = tmp_path / "skewed.parquet"
    _frame(500).drop(columns=["V3"]).assign(coupon=1).to_parquet(source)
    output = tmp_path / "never.parquet"
    request = BatchRequest(
        settings=rabbit_stack.settings,
        model=ModelRef.parse(f"{champion}/1"),
        input=str(source),
        output=str(output),
    )
    with pytest.raises((InputError, SkewError)) as caught:
        get_engine("spark").score(request)
    assert "V3" in str(caught.value)
    assert not output.exists()
    log = PredictionLog.open(rabbit_stack.settings.database)
    try:
        assert batchlog.segments(log.engine, job_id=request.job_id) == []
    finally:
        log.engine.dispose()


def _read_output(path: str) -> Any:
    """A scored file, or Spark's folder of part files in partition (= input) order."""
    import pandas as pd

    folder = Path(path)
    if folder.is_dir():
        parts = sorted(folder.glob("part-*.parquet"))
        return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    return pd.read_parquet(folder)


def test_a_redelivered_chunk_overwrites_its_segment_and_row(
    rabbit_stack: Stack, champion: str, rows_file: tuple[Path, Any]
) -> None:
    stack = rabbit_stack
    stack.ensure_workers(1)
    source, frame = rows_file
    job_id = uuid.uuid4().hex
    chunk = frame.iloc[:2_000]
    log = PredictionLog.open(stack.settings.database)
    try:
        for number, body in enumerate(
            [
                {"rows": rows_of(chunk)},
                {"source": {"uri": str(source), "start": 0, "rows": 2_000}},  # by reference
                {"rows": rows_of(chunk.iloc[:5])},
            ]
        ):
            identifier = batch_id(job_id, 0 if number < 2 else 1)  # the first chunk twice
            publish(
                stack.app,
                SCORE_TASK,
                identifier,  # the task id is the batch id (a redelivery has the same one)
                {
                    "job_id": job_id,
                    "batch_id": identifier,
                    "model": f"{champion}/1",
                    "columns": list(frame.columns),
                    **body,
                },
            )
        wait_for(lambda: log.count(batch_id=batch_id(job_id, 1)) == 5, timeout=120, what="marker")
        ids = _ids(log, job_id)
        expected = [prediction_id(batch_id(job_id, 0), r) for r in range(2_000)]
        expected += [prediction_id(batch_id(job_id, 1), r) for r in range(5)]
        assert sorted(ids) == sorted(expected)  # the redelivery replaced, never added
        assert count_logged(log, job_id) == 2_005
    finally:
        log.engine.dispose()


def test_a_batch_for_an_unknown_model_is_refused_or_dead_lettered(rabbit_stack: Stack) -> None:
    from loopml.core.errors import ModelNotFoundError
    from loopml.queue.submit import record_batch_job
    from loopml.queue.topology import Topology

    stack = rabbit_stack
    stack.ensure_workers(1)
    with pytest.raises(ModelNotFoundError, match="no version has the alias 'champion'"):
        score_through_queue(
            stack.app, stack.settings, ModelRef.parse("nobody@champion"), _frame(10), batch_rows=5
        )
    # A client that skips the check (another language, say): the worker fails the job.
    job_id = uuid.uuid4().hex
    record_batch_job(stack.settings, Topology.from_settings(stack.settings), job_id, "nobody/3", {})
    publish(
        stack.app,
        SCORE_TASK,
        batch_id(job_id, 0),
        {
            "job_id": job_id,
            "batch_id": batch_id(job_id, 0),
            "model": "nobody/3",
            "columns": ["a"],
            "rows": [[1.0]],
        },
    )
    jobs = stack.jobs()
    job = wait_for(lambda: (found := jobs.get(job_id)).finished and found, timeout=120, what="job")
    jobs.close()
    assert job.status == "rejected"
    assert job.error.startswith("dead-lettered: model 'nobody': there is no version 3"), job.error


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    rabbit_stack: Stack, champion: str
) -> None:
    """SIGKILL a worker while batches are being scored: its unacknowledged batch comes back.

    A batch is acknowledged only after its rows are committed, and its
    prediction ids come from the batch id and row number, so the redelivered
    batch fills exactly the gap: every input row has one prediction, counted by id.
    """
    stack = rabbit_stack
    stack.ensure_workers(2)
    rows, batch_rows = 12_000, 500
    frame = _frame(rows)
    log = PredictionLog.open(stack.settings.database)
    started = datetime.now(UTC)

    def logged_of_this_job() -> int:
        found = batchlog.segments(log.engine, model_name=champion, since=started)
        return sum(row.rows for row in found)

    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(
                score_through_queue,
                stack.app,
                stack.settings,
                ModelRef.parse(f"{champion}/1"),
                frame,
                batch_rows=batch_rows,
                progress=None,
                timeout_seconds=400,
            )
            wait_for(lambda: logged_of_this_job() >= 2_000, timeout=300, what="scoring under way")
            victim = stack.live_workers()[0]
            victim.kill()  # mid-job: it holds an unacknowledged batch (and prefetched ones)
            at_kill = logged_of_this_job()
            stack.ensure_workers(2)
            job_id, scored = running.result(timeout=400)
        assert at_kill < rows
        expected = [
            prediction_id(batch_id(job_id, n), r)
            for n in range(rows // batch_rows)
            for r in range(batch_rows)
        ]
        found = _ids(log, job_id)
        assert len(found) == rows  # no duplicates
        assert set(found) == set(expected)  # no gaps
        assert len(scored) == rows and scored["prediction"].notna().all()
    finally:
        log.engine.dispose()
