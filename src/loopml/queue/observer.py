"""Progress of a running training job, written to its row in the jobs table."""

from __future__ import annotations

import time
from collections.abc import Sequence

from loopml.core.errors import JobCancelledError
from loopml.core.status import Status
from loopml.store.jobs import JobStore


class JobObserver:
    """A :class:`~loopml.engine.RunObserver` that keeps the job row current.

    It also checks, before each step, whether someone cancelled the job; a
    cancelled job stops there, with every finished step kept.
    """

    #: Seconds between two writes of a step's progress (a comparison reports every fit).
    PROGRESS_EVERY = 1.0

    def __init__(self, jobs: JobStore, job_id: str) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self._written = 0.0

    def run_started(self, run_id: str, steps: Sequence[str], first: int) -> None:
        self.jobs.progress(self.job_id, run_id=run_id, steps_total=len(steps), steps_done=first)

    def step_started(self, position: int, name: str) -> None:
        if self.jobs.cancel_requested(self.job_id):
            raise JobCancelledError(
                f"job {self.job_id} was cancelled before step {position} ({name})"
            )
        self.jobs.progress(self.job_id, current_step=f"{position}: {name}")

    def step_progress(self, description: str, completed: float, total: float | None) -> None:
        """Write the latest progress (``loopml jobs show``: tuning trials done/total, best)."""
        clock = time.monotonic()
        if clock - self._written < self.PROGRESS_EVERY and completed != total:
            return
        self._written = clock
        self.jobs.note_progress(
            self.job_id, {"description": description, "completed": completed, "total": total}
        )

    def step_finished(self, position: int, name: str, status: str, seconds: float) -> None:
        if status == Status.SUCCEEDED:
            self.jobs.progress(self.job_id, steps_done=position + 1)
