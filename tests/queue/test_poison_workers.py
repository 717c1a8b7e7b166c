"""Two real workers take every kind of malformed message, on quorum and on classic queues.

The attack that stopped every worker on main (a body ``{"hello": 1}`` with
valid headers) and its relatives at every layer are published as raw AMQP,
the way a broken or hostile client would. Counted: worker processes alive,
dead letters (each with its reason, by message id), ``rejected`` job rows,
a file that unpickling would create, and a valid job that still runs after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue import declare_dead_letters, make_app
from loopml.queue.topology import TRAIN_TASK, Topology
from loopml.store.jobs import JobStore
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, fresh_postgres_database, require_service
from tests.queue.conftest import init_stores
from tests.queue.helpers import (
    RABBIT_HOST,
    RABBIT_PORT,
    Worker,
    delete_topology,
    drain_queue,
    make_data,
    publish_amqp,
    publish_raw,
    queue_depth,
    rabbit_settings,
    task_body,
    wait_for,
    wait_job_finished,
    write_spec,
)
from tests.queue.poison_cases import Case, cases

pytestmark = pytest.mark.timeout(300)


@dataclass
class Pair:
    settings: Settings
    topology: Topology
    workers: list[Worker]
    folder: Path
    data: Path


@pytest.fixture(scope="module", params=["quorum", "classic"])
def two_workers(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two ``loopml worker`` processes on queues of one type, started once for the module."""
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    queue_type = request.param
    folder = tmp_path_factory.mktemp(f"poison-{queue_type}")
    prefix = f"loopml-poison-{uuid.uuid4().hex[:8]}."
    with (
        fresh_postgres_database("meta") as database,
        fresh_postgres_database("mlflow") as tracking,
    ):
        settings = rabbit_settings(folder, prefix, database, tracking, queue_type=queue_type)
        init_stores(settings)
        declare_dead_letters(make_app(settings))
        workers = [
            Worker(settings, folder / f"worker-{i}.log", "training,inference") for i in (0, 1)
        ]
        try:
            for worker in workers:
                worker.wait_ready()
            yield Pair(
                settings, Topology.from_settings(settings), workers, folder, make_data(folder, 300)
            )
        finally:
            for worker in workers:
                worker.stop()
            delete_topology(prefix)


def test_no_message_stops_a_worker_and_each_is_dead_lettered_with_its_reason(
    two_workers: Pair,
) -> None:
    pair = two_workers
    topology = pair.topology
    marker = pair.folder / "unpickled"
    poison = cases(marker)
    pids = [worker.process.pid for worker in pair.workers]
    _publish_cases(topology, poison)
    valid = uuid.uuid4().hex
    spec = write_spec(pair.folder, pair.data, f"after_{valid[:6]}", register=False)
    publish_raw(
        topology.training,
        task_body({"job_id": valid, "spec": spec.read_text(), "source": str(spec)}),
        task=TRAIN_TASK,
        task_id=valid,
    )

    jobs = JobStore(pair.settings.database)
    try:
        job = wait_job_finished(jobs, valid, what="the valid job after the poison")
        assert job.status == Status.SUCCEEDED, job.error
        wait_for(
            lambda: queue_depth(topology.dead_letters) >= len(poison),
            timeout=60,
            what=f"{len(poison)} dead letters",
        )
        letters = drain_queue(topology.dead_letters)
        rows = {case.name: jobs.find(case.job_id) for case in poison if case.job_id}
    finally:
        jobs.close()

    # Both worker processes are the ones started before the poison, and alive.
    assert [w.process.pid for w in pair.workers] == pids
    assert all(worker.alive for worker in pair.workers), [
        w.log.read_text()[-2000:] for w in pair.workers
    ]
    for worker in pair.workers:
        assert "Unrecoverable error" not in worker.log.read_text(errors="replace")
    assert not marker.exists(), "a pickle body was deserialized"

    # Exactly one dead letter per poison message, each with its reason.
    by_tag: dict[str, list[Any]] = {}
    for letter in letters:
        by_tag.setdefault(str(letter.properties.get("message_id")), []).append(letter)
    assert len(letters) == len(poison), sorted(by_tag)
    problems = []
    workers_seen = set()
    for case in poison:
        found = by_tag.get(case.tag, [])
        if len(found) != 1:
            problems.append(f"{case.name}: {len(found)} dead letters")
            continue
        headers = found[0].headers or {}
        reason = str(headers.get("x-loopml-reason", ""))
        workers_seen.add(headers.get("x-loopml-rejected-by"))
        if case.reason not in reason or not reason:
            problems.append(f"{case.name}: reason {reason!r} lacks {case.reason!r}")
        if _raw_body(found[0]) != case.body:
            problems.append(f"{case.name}: the dead letter's body is not the message's")
        row = rows.get(case.name)
        if case.job_id and (
            row is None or row.status != Status.REJECTED or case.reason not in row.error
        ):
            problems.append(f"{case.name}: job row {row and (row.status, row.error)}")
    assert not problems, "\n".join(problems)
    assert len(workers_seen) == 2, f"poison reached only {workers_seen}"
    assert queue_depth(topology.training) == 0 and queue_depth(topology.inference) == 0


def _publish_cases(topology: Topology, poison: list[Case]) -> None:
    for case in poison:
        publish_amqp(
            topology.queue_for(case.queue),
            case.body,
            headers=case.headers,
            content_type=case.content_type,
            content_encoding=case.content_encoding,
            correlation_id=case.correlation_id,
            message_id=case.tag,
        )


def _raw_body(message: Any) -> bytes:
    """py-amqp hands bodies with a text encoding over decoded; undo that."""
    body = message.body
    if isinstance(body, str):
        return body.encode(message.properties.get("content_encoding") or "utf-8")
    return bytes(body)
