"""Training jobs on real RabbitMQ and PostgreSQL: parallel, killed, disconnected, exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from loopml.core.status import Status
from loopml.queue.submit import submit_spec_file
from loopml.store.runs import RunStore
from tests.queue.conftest import Stack
from tests.queue.helpers import wait_for, write_spec

pytestmark = pytest.mark.timeout(600)


def _name(label: str) -> str:
    return f"{label}_{uuid.uuid4().hex[:6]}"


def _runs_of(stack: Stack, model_name: str) -> list[Any]:
    store = RunStore(stack.settings.database)
    try:
        return store.list_runs(model_name=model_name, limit=10)
    finally:
        store.close()


def _wait_mid_run(stack: Stack, job_id: str) -> Any:
    """The job once a worker is inside its train_model step (or later, never finished)."""
    jobs = stack.jobs()
    try:
        return wait_for(
            lambda: (job := jobs.get(job_id)).status == "running" and job.steps_done >= 1 and job,
            timeout=180,
            interval=0.1,
            what=f"job {job_id} to get past its first step",
        )
    finally:
        jobs.close()


def test_several_specs_run_in_parallel_on_two_workers(rabbit_stack: Stack) -> None:
    stack = rabbit_stack
    stack.ensure_workers(2)
    names = [_name(f"parallel{i}") for i in range(3)]
    submitted = [
        submit_spec_file(stack.app, stack.settings, write_spec(stack.folder, stack.data, name))
        for name in names
    ]
    finished = [stack.wait_finished(job.id) for job in submitted]

    for job, name in zip(finished, names, strict=True):
        assert job.status == Status.SUCCEEDED, job.error
        assert job.run_id == job.id
        assert (job.registered_name, job.registered_version) == (name, "1")
        assert job.steps_done == job.steps_total == 4
        (run,) = _runs_of(stack, name)
        assert run.id == job.id and run.status == Status.SUCCEEDED
        assert run.executor.startswith("celery:")
    assert len({job.worker for job in finished}) == 2  # both workers took jobs
    overlapping = [
        (a.id, b.id)
        for a in finished
        for b in finished
        if a.id < b.id and a.started_at < b.ended_at and b.started_at < a.ended_at
    ]
    assert overlapping, "no two jobs ran at the same time"


def test_a_job_of_a_killed_worker_completes_on_the_other_exactly_once(rabbit_stack: Stack) -> None:
    stack = rabbit_stack
    stack.ensure_workers(2)
    name = _name("killed")
    job = submit_spec_file(stack.app, stack.settings, write_spec(stack.folder, stack.data, name))
    running = _wait_mid_run(stack, job.id)
    victim = stack.worker_for(running.worker)
    victim.kill()

    final = stack.wait_finished(job.id)
    assert final.status == Status.SUCCEEDED, final.error
    assert final.attempts == 2
    assert not final.worker.startswith(victim.hostname_prefix)
    (run,) = _runs_of(stack, name)  # one run for the job, not two
    assert run.id == job.id and run.status == "succeeded" and run.attempts == 2
    loads = [step for step in run.steps if step.position == 0]
    assert len(loads) == 1  # the finished load step was restored, not run again
    # the step the killed worker was in is closed as abandoned, and ran again to success
    assert [step for step in run.steps if step.status == Status.RUNNING] == []
    (abandoned,) = [step for step in run.steps if (step.error or "").startswith("abandoned:")]
    assert abandoned.status == Status.FAILED and victim.hostname_prefix in abandoned.error
    assert run.latest_steps()[abandoned.position].status == Status.SUCCEEDED
    assert (final.registered_name, final.registered_version) == (name, "1")
    stack.ensure_workers(2)


def test_workers_survive_a_dropped_broker_connection(rabbit_stack: Stack) -> None:
    stack = rabbit_stack
    workers = stack.ensure_workers(2)
    name = _name("dropped")
    job = submit_spec_file(stack.app, stack.settings, write_spec(stack.folder, stack.data, name))
    _wait_mid_run(stack, job.id)
    assert stack.proxy.cut(refuse_new=False) >= 2  # every worker's connection, mid-run

    final = stack.wait_finished(job.id)
    assert final.status == Status.SUCCEEDED, final.error
    assert final.attempts == 2  # cancelled on connection loss, redelivered after reconnecting
    (run,) = _runs_of(stack, name)
    assert run.id == job.id and run.status == Status.SUCCEEDED
    assert len([step for step in run.steps if step.position == 0]) == 1  # resumed, not redone
    assert all(worker.alive for worker in workers)


def test_a_running_job_cancelled_stops_before_its_next_step(rabbit_stack: Stack) -> None:
    stack = rabbit_stack
    stack.ensure_workers(1)
    name = _name("cancel")
    job = submit_spec_file(stack.app, stack.settings, write_spec(stack.folder, stack.data, name))
    _wait_mid_run(stack, job.id)
    jobs = stack.jobs()
    try:
        assert jobs.request_cancel(job.id).cancel_requested
    finally:
        jobs.close()
    final = stack.wait_finished(job.id)
    assert final.status == "cancelled", final.error
    assert final.attempts == 1 and final.steps_done < 4
    (run,) = _runs_of(stack, name)
    assert run.status == "failed" and "cancelled" in (run.error or "")
    assert [step.name for step in run.steps if step.status == Status.RUNNING] == []
