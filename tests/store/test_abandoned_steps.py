"""A run resumed after its worker was killed: the attempts left ``running`` are closed, with why."""

from __future__ import annotations

from loopml.core.status import Status
from loopml.store.runs import Provenance, RunStore

KILLED = Provenance("celery:loopml-1@a", "host-a", "ada", "0.1.0", None)
NEXT = Provenance("celery:loopml-2@b", "host-b", "ada", "0.1.0", None)


def test_reopening_a_run_closes_the_attempts_a_killed_worker_left_running(
    database_url: str,
) -> None:
    store = RunStore(database_url)
    try:
        run_id = store.create_run(
            spec_text="{}",
            spec_hash="f" * 64,
            spec_source=None,
            experiment_name="e",
            model_name="m",
            provenance=KILLED,
        )
        done = store.start_step(run_id, 0, "load", {}, "host-a")
        store.finish_step(done, Status.SUCCEEDED)
        store.start_step(run_id, 1, "train", {}, "host-a")  # the worker dies here
        store.reopen_run(run_id, NEXT)

        run = store.get_run(run_id)
        assert [step.status for step in run.steps] == [Status.SUCCEEDED, Status.FAILED]
        left = run.steps[1]
        assert left.error is not None and left.error.startswith("abandoned:")
        assert "host-a" in left.error and "celery:loopml-2@b" in left.error
        assert left.ended_at is not None
        assert run.steps[0].error is None  # finished attempts are not touched
        assert run.status == Status.RUNNING and run.attempts == 2

        again = store.start_step(run_id, 1, "train", {}, "host-b")
        store.finish_step(again, Status.SUCCEEDED)
        store.reopen_run(run_id, NEXT)  # nothing left running: nothing changes
        steps = store.get_run(run_id).steps
        assert [(s.position, s.attempt, s.status) for s in steps] == [
            (0, 1, Status.SUCCEEDED),
            (1, 1, Status.FAILED),
            (1, 2, Status.SUCCEEDED),
        ]
    finally:
        store.close()
