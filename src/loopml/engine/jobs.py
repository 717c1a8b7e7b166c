"""Run, resume or skip the pipeline run of a queued job.

A training job's id is also its pipeline run's id. Whoever executes a job
(the Celery worker today) hands the engine the job id and the checked spec;
the engine looks the run up and decides: no run yet, start one under that
id; a run that failed or was cut short, resume it from its first unfinished
step; a run that already succeeded (a worker died after finishing it), do
nothing. However often a message is delivered, the job ends with one run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from loopml.core.context import RegisteredModel
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.engine.runner import RunObserver, resume_run, run_pipeline
from loopml.engine.validate import CheckedSpec
from loopml.steps.registry import StepRegistry
from loopml.store.runs import RunStore, RunView

log = logging.getLogger(__name__)

JobAction = Literal["ran", "resumed", "skipped"]


@dataclass(frozen=True)
class JobRun:
    """What :func:`run_job` did, and the run as recorded afterwards."""

    action: JobAction
    run: RunView

    @property
    def registered(self) -> RegisteredModel | None:
        """The registry version the run produced, if it registered one."""
        return self.run.registered


def run_job(
    run_id: str,
    checked: CheckedSpec,
    settings: Settings,
    *,
    registry: StepRegistry | None = None,
    observer: RunObserver | None = None,
    executor: str = "local",
    smoke: bool = False,
) -> JobRun:
    """Start, resume or skip the run ``run_id`` of ``checked``; raises what the run raises.

    A step failure is a :class:`~loopml.core.errors.StepError` after the
    engine recorded it, as for :func:`run_pipeline`. ``smoke`` starts a new run
    with the smoke profile (a resumed run keeps the profile it recorded).
    """
    store = RunStore(settings.database)
    try:
        existing = store.find_run(run_id)
    finally:
        store.close()
    if existing is None:
        result = run_pipeline(
            checked,
            settings,
            registry=registry,
            observer=observer,
            executor=executor,
            run_id=run_id,
            smoke=smoke,
        )
        return JobRun("ran", result.run)
    if existing.status == Status.SUCCEEDED:
        log.info("run %s already succeeded (a redelivered job); nothing to run", run_id)
        return JobRun("skipped", existing)
    log.info("resuming run %s (attempt %d)", run_id, existing.attempts + 1)
    result = resume_run(
        run_id, settings, registry=registry, observer=observer, executor=executor, checked=checked
    )
    return JobRun("resumed", result.run)
