"""Classic queues have no delivery limit: loopml counts unfinished deliveries itself.

A message handed back to the queue because its consumer went away (here: a
consumer that takes it and closes its channel without an answer, as a
killed worker does) arrives ``redelivered``. The worker puts it back carrying
its count (``x-loopml-deliveries``) and runs it; past ``LOOPML_MAX_DELIVERIES``
it is dead-lettered with the reason and its job failed, so a message that
kills every worker it reaches cannot loop forever.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopml.core.status import Status
from loopml.queue import declare_dead_letters, make_app
from loopml.queue.admission import DELIVERIES_HEADER
from loopml.queue.topology import TRAIN_TASK, Topology
from loopml.store.jobs import TRAINING, JobStore
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, fresh_postgres_database, require_service
from tests.queue.conftest import init_stores
from tests.queue.helpers import (
    RABBIT_HOST,
    RABBIT_PORT,
    Worker,
    amqp_connection,
    delete_topology,
    drain_queue,
    make_data,
    protocol_headers,
    publish_amqp,
    queue_depth,
    rabbit_settings,
    task_body,
    wait_for,
    write_spec,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def _hand_back_unanswered(queue: str, count: int, rounds: int) -> None:
    """Take ``count`` messages without acking and drop the channel, ``rounds`` times."""
    for number in range(rounds):
        connection = amqp_connection()
        try:
            channel = connection.channel()
            taken = [channel.basic_get(queue, no_ack=False) for _ in range(count)]
            assert all(message is not None for message in taken)
            if number:
                assert all(message.delivery_info["redelivered"] for message in taken)
        finally:
            connection.close()  # unacknowledged: RabbitMQ puts them back, redelivered


def test_redeliveries_are_counted_on_classic_queues(tmp_path: Path) -> None:
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    prefix = f"loopml-redeliver-{uuid.uuid4().hex[:8]}."
    with (
        fresh_postgres_database("meta") as database,
        fresh_postgres_database("mlflow") as tracking,
    ):
        settings = rabbit_settings(tmp_path, prefix, database, tracking, queue_type="classic")
        init_stores(settings)
        topology = Topology.from_settings(settings)
        declare_dead_letters(make_app(settings))
        limit = settings.max_deliveries
        spec = write_spec(tmp_path, make_data(tmp_path, 300), "redelivered", register=False)
        exhausted, fresh = uuid.uuid4().hex, uuid.uuid4().hex
        jobs = JobStore(settings.database)
        try:
            for job_id, earlier in ((exhausted, limit - 1), (fresh, 0)):
                jobs.create(job_id, kind=TRAINING, queue=topology.training)
                publish_amqp(
                    topology.training,
                    task_body({"job_id": job_id, "spec": spec.read_text(), "source": str(spec)}),
                    headers={**protocol_headers(TRAIN_TASK, job_id), DELIVERIES_HEADER: earlier}
                    if earlier
                    else protocol_headers(TRAIN_TASK, job_id),
                    correlation_id=job_id,
                )
            _hand_back_unanswered(topology.training, count=2, rounds=2)
            worker = Worker(settings, tmp_path / "worker.log", "training")
            try:
                worker.wait_ready()
                done = {
                    job_id: wait_for(
                        lambda job_id=job_id: (j := jobs.get(job_id)).finished and j,
                        timeout=180,
                        what=f"job {job_id}",
                    )
                    for job_id in (exhausted, fresh)
                }
                wait_for(
                    lambda: queue_depth(topology.dead_letters) == 1, timeout=30, what="dead letter"
                )
                assert worker.alive
            finally:
                worker.stop()
            (letter,) = drain_queue(topology.dead_letters)
        finally:
            jobs.close()
            delete_topology(prefix)

    assert done[exhausted].status == Status.FAILED
    assert f"delivered {limit} times without finishing" in (done[exhausted].error or "")
    assert done[exhausted].attempts == 0  # never ran
    reason = str(letter.headers["x-loopml-reason"])
    assert f"delivered {limit} times" in reason
    assert done[fresh].status == Status.SUCCEEDED, done[fresh].error
    assert done[fresh].attempts == 1
