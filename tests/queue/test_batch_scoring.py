"""100,000 rows scored through the inference queue, every prediction in the prediction log."""

from __future__ import annotations

import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from loopml.batch import ModelRef, load_model, score_frame
from loopml.batch.results import count_logged
from loopml.batch.scoring import batch_id, prediction_id
from loopml.core.spec import parse_spec
from loopml.core.status import Status
from loopml.engine import run_pipeline
from loopml.queue.batches import rows_of, score_through_queue
from loopml.queue.submit import publish
from loopml.queue.topology import SCORE_TASK
from loopml.store.predictions import PredictionLog
from loopml.store.tables import Prediction
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


def test_100k_rows_through_the_queue_every_prediction_logged(
    rabbit_stack: Stack, champion: str
) -> None:
    stack = rabbit_stack
    stack.ensure_workers(2)
    frame = _frame(100_000)
    seen: list[tuple[int, int]] = []
    job_id, scored = score_through_queue(
        stack.app,
        stack.settings,
        ModelRef.parse(f"{champion}@champion"),
        frame,
        batch_rows=10_000,
        progress=lambda done, total: seen.append((done, total)),
        timeout_seconds=400,
    )
    log = PredictionLog.open(stack.settings.database)
    try:
        assert count_logged(log, job_id) == 100_000
        assert log.count(model_name=champion) == 100_000
        assert all(log.count(batch_id=batch_id(job_id, n)) == 10_000 for n in range(10))
        assert len(scored) == 100_000 and list(scored.index) == list(frame.index)
        model = load_model(stack.settings, ModelRef.parse(f"{champion}/1"))
        local = score_frame(model, frame)
        assert (scored["prediction"] == local["prediction"]).all()
        assert scored["probability_1"].round(6).equals(local["probability_1"].round(6))
        assert seen[-1] == (100_000, 100_000)
        job = stack.jobs().get(job_id)
        assert job.status == Status.SUCCEEDED and job.kind == "batch"
        assert job.steps_done == job.steps_total == 100_000

        # A redelivered batch writes nothing twice: ids come from the batch id and row.
        again = batch_id(job_id, 3)
        chunk = frame.iloc[30_000:40_000]
        publish(
            stack.app,
            SCORE_TASK,
            f"{again}-redelivered",
            {
                "job_id": job_id,
                "batch_id": again,
                "model": f"{champion}/1",
                "columns": list(frame.columns),
                "rows": rows_of(chunk),
            },
        )
        probe = batch_id(job_id, 99)  # a marker batch published after it, on the same queue
        publish(
            stack.app,
            SCORE_TASK,
            probe,
            {
                "job_id": job_id,
                "batch_id": probe,
                "model": f"{champion}/1",
                "columns": list(frame.columns),
                "rows": rows_of(chunk.iloc[:5]),
            },
        )
        wait_for(lambda: log.count(batch_id=probe) == 5, timeout=120, what="the marker batch")
        wait_for(
            lambda: count_logged(log, job_id) == 100_005, timeout=60, what="the redelivered batch"
        )
        assert log.count(batch_id=again) == 10_000
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
    table = Prediction.__table__
    started = datetime.now(UTC)

    def logged_of_this_job() -> int:
        query = sa.select(sa.func.count()).where(
            table.c.model_name == champion, table.c.created_at >= started
        )
        with log.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

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
        with log.engine.connect() as connection:
            found = [
                row[0]
                for row in connection.execute(
                    sa.select(table.c.id).where(table.c.batch_id.like(f"{job_id}-%"))
                )
            ]
        assert len(found) == rows  # no duplicates
        assert set(found) == set(expected)  # no gaps
        assert len(scored) == rows and scored["prediction"].notna().all()
    finally:
        log.engine.dispose()
