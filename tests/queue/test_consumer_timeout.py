"""A training job longer than the queue's consumer timeout is stopped once, never looped.

RabbitMQ takes back a delivery left unacknowledged past the consumer timeout
and hands it out again; a job that always runs longer would run forever. The
training task's hard limit sits below the queue's ``x-consumer-timeout``, so
the job is stopped, marked failed and acknowledged before the broker would act.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue import make_app
from loopml.queue.submit import submit_spec_file
from loopml.queue.topology import Topology
from loopml.store.runs import RunStore
from tests.queue.conftest import Stack
from tests.queue.helpers import Worker, delete_topology, make_data, queue_depth, write_spec

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def short_timeouts(rabbit_stack: Stack) -> Iterator[Settings]:
    prefix = f"loopml-test-{uuid.uuid4().hex[:8]}."
    settings = Settings(
        **{
            **rabbit_stack.settings.model_dump(include={"home", "tracking_uri", "database_url"}),
            "artifact_root": rabbit_stack.settings.artifacts,
            "broker_url": rabbit_stack.settings.broker_url,
            "queue_prefix": prefix,
            "training_time_limit": 2,
            "consumer_timeout": 15,
        }
    )
    yield settings
    delete_topology(prefix)


def test_the_consumer_timeout_must_exceed_the_hard_limit() -> None:
    with pytest.raises(ValueError, match="LOOPML_CONSUMER_TIMEOUT=10 must exceed"):
        Settings(training_time_limit=2, consumer_timeout=10)
    assert Settings(training_time_limit=3600).consumer_timeout == 3600 + 60 + 15 * 60


def test_a_job_longer_than_the_consumer_timeout_does_not_loop(
    rabbit_stack: Stack, short_timeouts: Settings
) -> None:
    settings = short_timeouts
    topology = Topology.from_settings(settings)
    assert topology.arguments()["x-consumer-timeout"] == 15_000
    assert settings.training_hard_limit < 15
    # Far more work than 15 s on any machine: a large frame, a forest and boosting.
    data = make_data(rabbit_stack.folder, 40_000, seed=11)
    name = f"slow_{uuid.uuid4().hex[:6]}"
    spec = write_spec(rabbit_stack.folder, data, name, estimators=("rf", "lightgbm"))
    worker = Worker(settings, rabbit_stack.folder / "slow-worker.log", "training")
    try:
        worker.wait_ready()
        _assert_declared_timeout(topology.training, 15_000)
        job = submit_spec_file(make_app(settings), settings, spec)
        final = rabbit_stack.wait_finished(job.id, timeout=120)
        assert final.status == Status.FAILED
        assert "LOOPML_TRAINING_TIME_LIMIT" in (final.error or ""), final.error
        assert final.attempts == 1
        assert final.started_at is not None
        # Stay until well past the consumer timeout: nothing comes back, nothing runs again.
        deadline = final.started_at.timestamp() + settings.consumer_timeout + 5  # type: ignore[operator]
        time.sleep(max(0.0, deadline - time.time()))
        again = rabbit_stack.jobs().get(job.id)
        assert again.attempts == 1 and again.status == Status.FAILED
        assert queue_depth(topology.training) == 0
        store = RunStore(settings.database)
        runs = store.list_runs(model_name=name)
        store.close()
        # The limit may strike before the run is recorded; if it was, it failed, once.
        assert [(run.id, run.status, run.attempts) for run in runs] in ([], [(job.id, "failed", 1)])
        assert worker.alive
    finally:
        worker.stop()


def _assert_declared_timeout(queue: str, milliseconds: int) -> None:
    """The broker holds the queue with our x-consumer-timeout (when rabbitmqctl is at hand)."""
    if shutil.which("rabbitmqctl") is None:
        return
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "arguments"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    line = next(line for line in listing.splitlines() if line.startswith(queue + "\t"))
    assert f'{{"x-consumer-timeout",{milliseconds}}}' in line, line
