"""The engine: run a checked spec step by step, record everything, resume after a failure.

The CLI, the worker and the API all call :func:`run_pipeline` and
:func:`resume_run` (the worker through :func:`loopml.engine.run_job`); none
of them re-implements a rule. Both take a :class:`CheckedSpec`, made once per
process by ``load_spec``/``check_spec``, so a spec is never checked (nor its
data header read) twice. A run is recorded in the metadata store only after
the whole spec has been checked, so a bad spec leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loopml.core.access import DataPolicy
from loopml.core.context import StepContext
from loopml.core.errors import DataError, LoopmlError, StepError
from loopml.core.settings import Settings
from loopml.core.spec import PipelineSpec
from loopml.core.status import Status
from loopml.engine import outputs
from loopml.engine.provenance import draw_seed, provenance, reproducibility
from loopml.engine.validate import (
    TRAINING_FRAME,
    CheckedSpec,
    CheckedStep,
    check_spec,
    check_spec_text,
    target_issue,
)
from loopml.registry.tracking import ensure_experiment, use_tracking
from loopml.steps.registry import StepRegistry
from loopml.store.runs import Reproducibility, RunStore, RunView

log = logging.getLogger(__name__)


class RunObserver(Protocol):
    """What a face (CLI progress bars, job status) hears while a run goes."""

    def run_started(self, run_id: str, steps: Sequence[str], first: int) -> None: ...

    def step_started(self, position: int, name: str) -> None: ...

    def step_progress(self, description: str, completed: float, total: float | None) -> None: ...

    def step_finished(self, position: int, name: str, status: str, seconds: float) -> None: ...


class _Silent:
    def run_started(self, run_id: str, steps: Sequence[str], first: int) -> None:
        return None

    def step_started(self, position: int, name: str) -> None:
        return None

    def step_progress(self, description: str, completed: float, total: float | None) -> None:
        return None

    def step_finished(self, position: int, name: str, status: str, seconds: float) -> None:
        return None


@dataclass(frozen=True)
class PipelineResult:
    """A finished run as recorded, and the context its steps left (frames, models, reports)."""

    run: RunView
    context: StepContext


def run_pipeline(
    checked: CheckedSpec | PipelineSpec,
    settings: Settings,
    *,
    registry: StepRegistry | None = None,
    observer: RunObserver | None = None,
    executor: str = "local",
    run_id: str | None = None,
    seed: int | None = None,
    smoke: bool = False,
    threads: int | None = None,
    reproduces: str | None = None,
) -> PipelineResult:
    """Record a new run of ``checked`` and execute every step; the finished run.

    A :class:`CheckedSpec` runs as it is; a bare :class:`PipelineSpec` is
    checked first (with ``registry``), raising :class:`SpecError` before
    anything is recorded. Raises :class:`StepError` after recording a step's
    failure (resume it by run id).

    ``seed`` (default: drawn and recorded) reaches every seeded step where the
    spec gives no ``session_id``; ``threads`` (default: every core) pins the
    fits' thread count; ``smoke`` asks for the fast profile
    (:mod:`loopml.automl.smoke`) and moves no alias; ``reproduces`` names the
    run a reproduction re-runs (it moves no alias either).
    """
    if not isinstance(checked, CheckedSpec):
        checked = check_spec(
            checked,
            registry or StepRegistry.with_builtins(),
            policy=DataPolicy.from_settings(settings),
        )
    spec = checked.spec
    seed = draw_seed() if seed is None else seed
    threads = threads or default_threads()
    record = reproducibility(
        checked, seed=seed, smoke=smoke, threads=threads, reproduces=reproduces
    )
    store = RunStore(settings.database)
    try:
        mlflow = use_tracking(settings)
        experiment_id = ensure_experiment(settings, spec.experiment.experiment_name)
        new_id = store.create_run(
            spec_text=spec.text,
            spec_hash=spec.spec_hash,
            spec_source=str(spec.source) if spec.source else None,
            experiment_name=spec.experiment.experiment_name,
            model_name=spec.experiment.model_name,
            provenance=provenance(executor, spec.base_dir),
            run_id=run_id,
            reproducibility=record,
        )
        try:
            parent = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"pipeline-{new_id[:8]}",
                tags={
                    "loopml.run_id": new_id,
                    "loopml.spec_hash": spec.spec_hash,
                    "loopml.kind": "pipeline",
                },
            )
            store.update_run(
                new_id, mlflow_experiment_id=experiment_id, mlflow_run_id=parent.info.run_id
            )
            mlflow.log_text(spec.text, "loopml/spec.txt")
            mlflow.log_params(spec_params(checked, smoke=smoke))
            log_reproducibility(mlflow, record)
        except Exception as exc:
            store.finish_run(
                new_id,
                Status.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            raise
        context = _context(new_id, checked, settings, parent.info.run_id, record)
        return _execute(checked, context, store, mlflow, observer or _Silent(), first=0)
    finally:
        store.close()


def spec_params(checked: CheckedSpec, *, smoke: bool = False) -> dict[str, str]:
    """The spec's main choices as MLflow params of the parent run, to filter and compare runs.

    The estimator list and fold come from the first ``train_model`` step; a
    smoke run logs the fold it really uses.
    """
    experiment = checked.experiment
    params = {
        "experiment_name": experiment.experiment_name,
        "model_name": experiment.model_name,
        "main_metric": experiment.main_metric,
        "problem_type": experiment.problem_type,
        "target": experiment.target,
        "steps": ",".join(checked.step_names),
    }
    for item in checked.steps:
        modeling = getattr(item.params, "modeling_params", None)
        if item.call.name == "train_model" and modeling is not None:
            estimators = modeling.estimator_list
            params["estimators"] = ",".join(estimators) if estimators else "all"
            params["fold"] = str(modeling.fold)
            if smoke:
                from loopml.automl.smoke import SMOKE_FOLD

                params["fold"] = str(SMOKE_FOLD)
            break
    return {key: value[:500] for key, value in params.items()}


def resume_run(
    run_id: str,
    settings: Settings,
    *,
    registry: StepRegistry | None = None,
    observer: RunObserver | None = None,
    executor: str = "local",
    checked: CheckedSpec | None = None,
) -> PipelineResult:
    """Re-run ``run_id`` from its first unfinished step, restoring what earlier steps made.

    ``checked`` is the run's own spec when the caller has already checked it
    (a redelivered job); otherwise the recorded spec text is checked here,
    without peeking at the data (a resume may run where the data moved).
    """
    store = RunStore(settings.database)
    try:
        run = store.get_run(run_id)
        if run.status == Status.SUCCEEDED:
            raise LoopmlError(f"run {run.id} already succeeded; nothing to resume")
        if checked is None:
            checked = check_spec_text(
                run.spec_text,
                registry or StepRegistry.with_builtins(),
                source=_source(run),
                peek_data=False,
                policy=DataPolicy.from_settings(settings),
            )
        elif checked.spec_hash != run.spec_hash:
            raise LoopmlError(
                f"run {run.id} was recorded with spec {run.spec_hash[:12]}, not the spec given "
                f"({checked.spec_hash[:12]}); resume it without a spec, or start a new run"
            )
        latest = run.latest_steps()
        first = next(
            (
                item.position
                for item in checked.steps
                if latest.get(item.position) is None
                or latest[item.position].status != Status.SUCCEEDED
            ),
            len(checked.steps),
        )
        mlflow = use_tracking(settings)
        detail = run.reproducibility or {}
        record = reproducibility(
            checked,
            seed=run.seed,
            smoke=run.smoke,
            threads=detail.get("threads") or default_threads(),
            reproduces=detail.get("reproduces"),
        )
        mlflow.start_run(run_id=run.mlflow_run_id)
        store.reopen_run(run.id, provenance(executor, checked.base_dir))
        store.record_reproducibility(run.id, record)
        log_reproducibility(mlflow, record)
        context = _context(run.id, checked, settings, run.mlflow_run_id, record)
        try:
            for position in range(first):
                outputs.restore(context, latest[position].outputs, mlflow)
        except BaseException:
            mlflow.end_run(status="FAILED")  # a refused resume leaves no active MLflow run
            raise
        return _execute(checked, context, store, mlflow, observer or _Silent(), first=first)
    finally:
        store.close()


def _source(run: RunView) -> Path | None:
    return Path(run.spec_source) if run.spec_source else None


def default_threads() -> int:
    """Every core this process may use: the fits' thread count unless a run pins one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def log_reproducibility(mlflow: Any, record: Reproducibility) -> None:
    """The environment and code manifest as artifacts of the parent run, their hashes as tags."""
    detail = record.detail
    mlflow.log_dict(detail["environment"], "loopml/environment.json")
    mlflow.log_dict({"code_hash": record.code_hash, "files": detail["code"]}, "loopml/code.json")
    tags = {
        "loopml.seed": str(record.seed),
        "loopml.threads": str(detail.get("threads")),
        "loopml.smoke": str(record.smoke).lower(),
        "loopml.code_hash": record.code_hash,
        "loopml.environment_hash": record.environment_hash,
    }
    if detail.get("loopml_git_commit"):
        tags["loopml.git_commit"] = detail["loopml_git_commit"]
    if detail.get("reproduces"):
        tags["loopml.reproduces"] = detail["reproduces"]
    mlflow.set_tags(tags)


def _context(
    run_id: str,
    checked: CheckedSpec,
    settings: Settings,
    mlflow_run_id: str | None,
    record: Reproducibility,
) -> StepContext:
    detail = record.detail
    return StepContext(
        run_id=run_id,
        experiment=checked.experiment,
        settings=settings,
        base_dir=checked.base_dir,
        spec_hash=checked.spec_hash,
        mlflow_run_id=mlflow_run_id,
        pipeline=checked.step_names,
        seed=record.seed,
        threads=detail.get("threads"),
        smoke=record.smoke,
        reproduces=detail.get("reproduces"),
        code_paths=[Path(path) for path in detail.get("code_paths") or ()],
    )


def _execute(
    plan: CheckedSpec,
    context: StepContext,
    store: RunStore,
    mlflow: Any,
    observer: RunObserver,
    *,
    first: int,
) -> PipelineResult:
    observer.run_started(context.run_id, [item.call.name for item in plan.steps], first)
    context.progress = observer.step_progress
    _seed_globals(context.seed)
    hashed_paths = list(context.code_paths)
    host = socket.gethostname()
    for item in plan.steps[first:]:
        name = item.call.name
        observer.step_started(item.position, name)
        step_id = store.start_step(
            context.run_id, item.position, name, item.params.model_dump(mode="json"), host
        )
        started = time.perf_counter()
        before = outputs.snapshot(context)
        try:
            item.definition(context, item.params)
            _check_target(context, item)
            written = outputs.changed(context, before)
            _check_declared(item, written)
            pointers = outputs.persist(
                context, written, f"loopml/steps/{item.position:02d}_{name}", mlflow
            )
        except BaseException as exc:
            seconds = time.perf_counter() - started
            store.finish_step(step_id, Status.FAILED, error=f"{type(exc).__name__}: {exc}")
            store.finish_run(
                context.run_id,
                Status.FAILED,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            try:
                mlflow.end_run(status="FAILED")
            except Exception as closing:  # Ctrl-C mid-write can leave MLflow's SQLite locked
                log.warning("could not mark the MLflow run failed: %s", closing)
            observer.step_finished(item.position, name, Status.FAILED, seconds)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise StepError(name, item.position, exc) from exc
        if context.code_paths != hashed_paths:  # a step ran code from outside loopml
            hashed_paths = list(context.code_paths)
            record = reproducibility(
                plan,
                seed=context.seed,
                smoke=context.smoke,
                threads=context.threads,
                extra_paths=hashed_paths,
                reproduces=context.reproduces,
            )
            store.record_reproducibility(context.run_id, record)
            log_reproducibility(mlflow, record)
        store.finish_step(step_id, Status.SUCCEEDED, outputs=pointers)
        observer.step_finished(item.position, name, Status.SUCCEEDED, time.perf_counter() - started)
        store.update_run(
            context.run_id,
            data_fingerprint=context.loaded.fingerprint if context.loaded else None,
            values={**_jsonable(context.values), **context.output_record()},
        )
    store.finish_run(context.run_id, Status.SUCCEEDED)
    mlflow.end_run(status="FINISHED")
    return PipelineResult(store.get_run(context.run_id), context)


def _seed_globals(seed: int | None) -> None:
    """Seed Python's and numpy's global generators, for steps that draw without a seed."""
    if seed is None:
        return
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)


def _check_target(context: StepContext, item: CheckedStep) -> None:
    """Stop right after loading when the training frame lacks the target column."""
    frame = context.data.get(TRAINING_FRAME)
    target = context.experiment.target
    if frame is not None and target not in frame.columns:
        issue = target_issue(target, [str(c) for c in frame.columns], item.call.path)
        raise DataError(issue.render())


def _check_declared(item: CheckedStep, written: list[str]) -> None:
    """Refuse a step that wrote outputs it did not declare (see ``loopml.steps.base``)."""
    extra = item.definition.undeclared(item.params, written)
    if extra:
        declared = item.definition.declared_outputs(item.params) or ()
        raise DataError(
            f"step {item.call.name!r} wrote {', '.join(extra)}, which it does not declare "
            f"(declared: {', '.join(declared) or 'nothing'}); add them to outputs= in its @step"
        )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """The values that survive a JSON round trip; the rest stay in the artifacts only."""
    kept: dict[str, Any] = {}
    for key, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept
