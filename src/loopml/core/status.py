"""The one status vocabulary of runs, steps, jobs and retrain requests.

Every table that records how something is going stores one of these words,
and every face (CLI, API, reports) compares against these members, never
against string literals: a job, the pipeline run it drives and that run's
steps can then be compared and filtered with one set of names. ``StrEnum``
members are plain strings, so they go to the database and JSON as they are
and compare equal to the text read back.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a run, a step attempt, a job or a retrain request stands."""

    REQUESTED = "requested"
    """A retrain request recorded, not yet settled by its job."""
    QUEUED = "queued"
    """A job sent to the broker, not yet picked up by a worker."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    """A job refused before it ran (a malformed message, a spec that does not check)."""

    @property
    def finished(self) -> bool:
        """Whether nothing will change this status any more."""
        return self in FINISHED


FINISHED: frozenset[Status] = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REJECTED}
)
"""The statuses that end a job, a run or a step attempt."""
