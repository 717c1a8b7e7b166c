"""Messages no worker can act on: marked rejected, dead-lettered, never retried forever."""

from __future__ import annotations

import json
import uuid

import pytest

from loopml.core.status import Status
from loopml.queue.topology import TRAIN_TASK, Topology
from loopml.store.jobs import TRAINING
from tests.queue.conftest import Stack
from tests.queue.helpers import publish_raw, queue_depth, task_body, wait_for, write_spec

pytestmark = pytest.mark.timeout(300)
BAD_SPEC = json.dumps(
    {
        "pipeline": [{"MLSteps": [{"no_such_step": {}}]}],
        "experiment_config": {
            "experiment_name": "e",
            "model_name": "m",
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
)


def _topology(stack: Stack) -> Topology:
    return Topology.from_settings(stack.settings)


def test_malformed_messages_and_bad_specs_are_rejected_and_dead_lettered(
    rabbit_stack: Stack,
) -> None:
    stack = rabbit_stack
    stack.ensure_workers(1)
    topology = _topology(stack)
    dead_before = queue_depth(topology.dead_letters)
    undecodable, bad_spec, missing = (uuid.uuid4().hex for _ in range(3))
    publish_raw(topology.training, b"{this is not json", task=TRAIN_TASK, task_id=undecodable)
    publish_raw(
        topology.training,
        task_body({"job_id": bad_spec, "spec": BAD_SPEC}),
        task=TRAIN_TASK,
        task_id=bad_spec,
    )
    publish_raw(topology.training, task_body({"job_id": missing}), task=TRAIN_TASK, task_id=missing)

    jobs = stack.jobs()
    try:
        for job_id, expected in (
            (undecodable, "not valid UTF-8 JSON"),
            (bad_spec, "no_such_step"),
            (missing, "spec: Field required"),
        ):
            job = wait_for(
                lambda job_id=job_id: (found := jobs.find(job_id)) and found.finished and found,
                timeout=120,
                what=f"poison job {job_id} to be rejected",
            )
            assert job.status == Status.REJECTED
            assert job.error.startswith("dead-lettered:") and expected in job.error, job.error
            assert job.attempts <= 1
    finally:
        jobs.close()
    wait_for(
        lambda: queue_depth(topology.dead_letters) == dead_before + 3,
        timeout=30,
        what="three dead letters",
    )
    assert queue_depth(topology.training) == 0  # nothing requeued


def test_a_job_delivered_too_often_is_dead_lettered_not_run(rabbit_stack: Stack) -> None:
    stack = rabbit_stack
    stack.ensure_workers(1)
    topology = _topology(stack)
    job_id = uuid.uuid4().hex
    spec = write_spec(stack.folder, stack.data, f"looping_{job_id[:6]}")
    jobs = stack.jobs()
    try:
        jobs.create(job_id, kind=TRAINING, queue=topology.training)
        for _ in range(stack.settings.max_deliveries):  # earlier deliveries that never finished
            jobs.start_attempt(job_id, "a worker that vanished")
        publish_raw(
            topology.training,
            task_body({"job_id": job_id, "spec": spec.read_text(), "source": str(spec)}),
            task=TRAIN_TASK,
            task_id=job_id,
        )
        job = wait_for(
            lambda: (found := jobs.get(job_id)).finished and found, timeout=120, what="the job"
        )
    finally:
        jobs.close()
    assert job.status == Status.FAILED
    assert f"delivered {stack.settings.max_deliveries + 1} times" in job.error
    assert job.run_id is None  # never ran
