"""Bringing the spec that made the champion back around: the monitor's retrain hook.

A retrain is the same spec that produced the serving champion (found through
the version's ``loopml.run_id`` tag and the metadata store), with its data
source pointed at the fresh data the policy names, sent to the training
queue like any ``loopml submit``. The spec's own gate (``validate_model``)
decides whether the result replaces the champion, and serving follows the
alias. Schema skew never comes here: the policy alerts people instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loopml.core.errors import ConfigError, LoopmlError
from loopml.core.settings import Settings
from loopml.core.spec import PipelineSpec, parse_spec
from loopml.core.status import Status
from loopml.engine import check_spec
from loopml.monitoring.monitor import Retrain
from loopml.monitoring.policy import MonitorPolicy, policy_for
from loopml.registry.models import CHAMPION, get_version, version_for_alias
from loopml.steps.registry import StepRegistry
from loopml.store.jobs import JobStore
from loopml.store.monitoring import MonitorStore
from loopml.store.runs import RunStore

log = logging.getLogger(__name__)

RUN_ID_TAG = "loopml.run_id"
LOAD_PREFIX = "load_data_"

Submit = Callable[[PipelineSpec], str]
"""Queues a checked spec and returns its job id (``loopml.queue.submit_training``)."""


def champion_spec(settings: Settings, model_name: str) -> PipelineSpec:
    """The spec whose run registered the current champion of ``model_name``."""
    version = version_for_alias(settings, model_name, CHAMPION)
    if version is None:
        raise LoopmlError(f"model {model_name!r} has no champion, so there is no spec to re-run")
    run_id = get_version(settings, model_name, version).tags.get(RUN_ID_TAG)
    if not run_id:
        raise LoopmlError(
            f"{model_name} version {version} has no {RUN_ID_TAG!r} tag: it was not registered "
            "by a loopml run, so the monitor cannot tell which spec to re-run"
        )
    run = RunStore(settings.database).get_run(run_id)
    return parse_spec(run.spec_text, source=Path(run.spec_source) if run.spec_source else None)


def with_fresh_data(spec: PipelineSpec, fresh_data: str) -> PipelineSpec:
    """``spec`` with its load step replaced by ``load_data_from_file`` on ``fresh_data``."""
    document: dict[str, Any] = json.loads(json.dumps(spec.document, default=str))
    for block in document.get("pipeline", []):
        for position, call in enumerate(block.get("MLSteps", [])):
            name = next(iter(call))
            if name.startswith(LOAD_PREFIX):
                block["MLSteps"][position] = {"load_data_from_file": {"path": fresh_data}}
                return parse_spec(json.dumps(document, indent=2), source=spec.source)
    raise ConfigError(
        f"the champion's spec has no {LOAD_PREFIX}* step to point at fresh data {fresh_data!r}"
    )


def training_data(spec: PipelineSpec) -> Path:
    """The file the spec trains on, for a reference when none is given."""
    for call in spec.steps:
        if call.name == "load_data_from_file":
            path = Path(str(call.params.get("path", "")))
            return path if path.is_absolute() or "://" in str(path) else spec.base_dir / path
    raise ConfigError(
        "the champion's spec does not load a data file (load_data_from_file), so there is no "
        "training data to compare with: pass --reference PATH"
    )


def queue_retrain(
    settings: Settings, policies: Mapping[str, MonitorPolicy], submit: Submit
) -> Retrain:
    """The ``retrain(model_name, reason)`` hook: re-run the champion's spec on fresh data."""

    def retrain(model_name: str, reason: str) -> str | None:
        policy = policy_for(model_name, dict(policies))
        if policy.fresh_data is None:
            raise ConfigError(
                f"monitor policy for {model_name!r} names no fresh_data: set it to the data "
                "source a retrain should train on"
            )
        spec = with_fresh_data(champion_spec(settings, model_name), policy.fresh_data)
        check_spec(spec, StepRegistry.with_builtins())  # fresh data without the target: refuse now
        job_id = submit(spec)
        log.info("retrain of %s queued as job %s: %s", model_name, job_id, reason)
        return job_id

    return retrain


def settle_retrains(store: MonitorStore, jobs: JobStore, model_name: str) -> int:
    """Close the retrain requests whose job has ended, freeing the model's retrain slot.

    Called at the start of every monitor pass, so the guard reflects the
    queue's truth without the worker knowing about monitoring. Returns how
    many requests were closed.
    """
    closed = 0
    for request in store.retrains(model_name):
        if request.finished_at is not None or request.job_id is None:
            continue
        job = jobs.find(request.job_id)
        if job is None or not job.finished:
            continue
        error = None if job.status == Status.SUCCEEDED else (job.error or f"job ended {job.status}")
        if job.status == Status.FAILED or error is not None:
            log.warning("retrain job %s of %s ended %s: %s", job.id, model_name, job.status, error)
        store.finish_retrain(request.id, error=error)
        closed += 1
    return closed
