"""Rejections in the jobs table: a row is created or ended; a finished job keeps its end."""

from __future__ import annotations

from loopml.core.status import FINISHED, Status
from loopml.store.jobs import TRAINING, JobStore


def test_a_rejection_creates_or_ends_the_job_and_never_undoes_an_ending(database_url: str) -> None:
    jobs = JobStore(database_url)
    try:
        unknown = jobs.reject("a1", kind="unknown", queue="q", reason="bad body", details={})
        assert (unknown.status, unknown.kind, unknown.error) == (
            Status.REJECTED,
            "unknown",
            "dead-lettered: bad body",
        )
        assert Status.REJECTED in FINISHED and unknown.ended_at is not None

        assert jobs.create("b2", kind=TRAINING, queue="q").status == Status.QUEUED
        ended = jobs.reject("b2", kind=TRAINING, queue="q", reason="no spec", details={"w": 1})
        assert ended.status == Status.REJECTED and ended.details["rejections"][0]["w"] == 1

        jobs.create("c3", kind=TRAINING, queue="q")
        jobs.finish("c3", Status.SUCCEEDED)
        for number in range(12):  # a flood of malformed duplicates naming a finished job
            kept = jobs.reject("c3", kind=TRAINING, queue="q", reason=f"dup {number}", details={})
        assert kept.status == Status.SUCCEEDED and kept.error is None
        reasons = [entry["reason"] for entry in kept.details["rejections"]]
        assert reasons == [f"dup {n}" for n in range(2, 12)]  # the last ten, bounded
        assert len(jobs.list(status=Status.REJECTED)) == 2
    finally:
        jobs.close()
