"""Re-run a recorded run exactly and say what, if anything, came out different.

The recorded spec runs again with the recorded seed, thread count and
profile on the recorded data. The data is checked first, by reading it the
way the run's loader did and comparing fingerprints: when the file changed
the reproduction is refused before anything is recorded, unless a snapshot
(``data``) with the recorded fingerprint is given. Afterwards every
difference of code (files of loopml, plugin steps, MLproject sources) and of
environment (each distribution, Python, platform) is listed, and every
metric the original logged (its pipeline run and each candidate run, every
fold) is compared with the new one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loopml.core.access import DataPolicy
from loopml.core.context import StepContext
from loopml.core.errors import ConfigError, DataError, InputFileError, LoopmlError
from loopml.core.reproducibility import environment_diff, mapping_diff
from loopml.core.settings import Settings
from loopml.core.spec import StepCall
from loopml.core.status import Status
from loopml.engine.runner import RunObserver, run_pipeline
from loopml.engine.validate import CheckedSpec, CheckedStep, check_spec_text
from loopml.steps.registry import StepRegistry
from loopml.store.runs import RunStore, RunView

Verdict = Literal["equal", "within_tolerance", "different", "missing", "new", "timing"]
TIMING_SUFFIXES = ("_time_s", "_seconds", "fit_time_s")
"""Metrics that measure wall time: shown, never counted as a difference."""


class DataChangedError(DataError):
    """The data a run read no longer has the fingerprint the run recorded (exit code 2:
    bad input, where a reproduction that ran and differs exits 1)."""

    exit_code = 2


@dataclass(frozen=True)
class MetricComparison:
    """One logged metric (``run/metric``, ``[step N]`` per fold) in the original and now."""

    name: str
    original: float | None
    reproduced: float | None
    verdict: Verdict


@dataclass(frozen=True)
class Reproduction:
    """What ``loopml runs reproduce`` found."""

    original: RunView
    run: RunView
    data_source: str
    data_fingerprint: str | None
    code_changes: list[dict[str, str]]
    environment_changes: list[dict[str, str]]
    metrics: list[MetricComparison]
    tolerance: float
    notes: tuple[str, ...] = ()
    """What limits the comparison: no recorded seed, no recorded fingerprint."""

    @property
    def exact(self) -> bool:
        """Every compared metric equal (timings aside)."""
        return all(item.verdict in ("equal", "timing") for item in self.metrics)

    @property
    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for item in self.metrics:
            found[item.verdict] = found.get(item.verdict, 0) + 1
        return found


def reproduce_run(
    run_id: str,
    settings: Settings,
    *,
    data: Path | None = None,
    tolerance: float = 0.0,
    registry: StepRegistry | None = None,
    observer: RunObserver | None = None,
) -> Reproduction:
    """Re-run ``run_id`` with its recorded seed, threads and profile; compare everything.

    Raises :class:`DataChangedError` (nothing recorded) when the data's
    fingerprint differs from the recorded one.
    """
    if tolerance < 0 or math.isnan(tolerance):
        raise LoopmlError(f"--tolerance must be a number >= 0 (found {tolerance})")
    store = RunStore(settings.database)
    try:
        original = store.get_run(run_id)
    finally:
        store.close()
    if original.status != Status.SUCCEEDED:
        raise LoopmlError(
            f"run {original.id} {original.status}; only a succeeded run has results to "
            f"reproduce (`loopml runs resume {original.id}` finishes a failed one)"
        )
    registry = registry or StepRegistry.with_builtins()
    checked = check_spec_text(
        original.spec_text,
        registry,
        source=Path(original.spec_source) if original.spec_source else None,
        peek_data=False,
        policy=DataPolicy.from_settings(settings),
    )
    if data is not None:
        checked = with_snapshot(checked, registry, data)
    source, fingerprint = data_fingerprint(checked, settings)
    recorded = original.data_fingerprint
    if recorded is not None and fingerprint != recorded:
        given = "the snapshot given with --data" if data is not None else "the data"
        raise DataChangedError(
            f"{given} is not what run {original.id} trained on: {source} has fingerprint "
            f"{fingerprint}, the run recorded {recorded}. Pass --data PATH naming a snapshot "
            "of the original data (same fingerprint) to reproduce it"
        )
    detail = original.reproducibility or {}
    notes = []
    if original.seed is None:
        notes.append(
            f"run {original.id} recorded no seed (it predates seed recording): the new run "
            "draws its own, so seeded results may differ"
        )
    if recorded is None:
        notes.append(f"run {original.id} recorded no data fingerprint: the data was not checked")
    result = run_pipeline(
        checked,
        settings,
        registry=registry,
        observer=observer,
        executor="reproduce",
        seed=original.seed,
        smoke=original.smoke,
        threads=detail.get("threads"),
        reproduces=original.id,
    )
    run = result.run
    now = run.reproducibility or {}
    code_changes = mapping_diff(detail.get("code") or {}, now.get("code") or {})
    for key, label in (("loopml_version", "loopml version"),):
        if getattr(original, key) != getattr(run, key):
            code_changes.insert(
                0, {"name": label, "was": str(getattr(original, key)), "now": getattr(run, key)}
            )
    return Reproduction(
        original=original,
        run=run,
        data_source=source,
        data_fingerprint=fingerprint,
        code_changes=code_changes,
        environment_changes=environment_diff(
            detail.get("environment") or {}, now.get("environment") or {}
        ),
        metrics=compare_metrics(settings, original, run, tolerance),
        tolerance=tolerance,
        notes=tuple(notes),
    )


def _loaders(checked: CheckedSpec) -> list[CheckedStep]:
    return [
        item
        for item in checked.steps
        if "loaded" in (item.definition.declared_outputs(item.params) or ())
    ]


def with_snapshot(checked: CheckedSpec, registry: StepRegistry, data: Path) -> CheckedSpec:
    """``checked`` with its last loader replaced by a file loader reading ``data``.

    The frame keeps its name; the spec text and hash stay the recorded ones
    (the reproduction runs the same spec on a copy of the same data).
    """
    loaders = _loaders(checked)
    if not loaders:
        raise ConfigError("the run's spec has no loader step, so --data has nothing to replace")
    if data.is_dir():
        raise InputFileError(f"--data {data} is a folder; give the snapshot file the run read")
    if not data.is_file():
        raise InputFileError(f"--data {data}: no such file ({data.resolve()})")
    last = loaders[-1]
    definition = registry.get("load_data_from_file")
    frame = str(getattr(last.params, "frame", "train"))
    params = definition.params.model_validate({"path": str(data.resolve()), "frame": frame})
    replaced = CheckedStep(
        position=last.position,
        call=StepCall("load_data_from_file", {"path": str(data)}, last.call.location),
        definition=definition,
        params=params,
    )
    steps = tuple(replaced if item is last else item for item in checked.steps)
    return dataclasses.replace(checked, steps=steps)


def data_fingerprint(checked: CheckedSpec, settings: Settings) -> tuple[str, str | None]:
    """(source, fingerprint) of the data the spec's loaders read now, read as the run reads it."""
    context = StepContext(
        run_id="reproduce-check",
        experiment=checked.experiment,
        settings=settings,
        base_dir=checked.base_dir,
    )
    for item in _loaders(checked):
        item.definition(context, item.params)
    if context.loaded is None:
        return "(no loader)", None
    return context.loaded.source, context.loaded.fingerprint


def _timing(name: str) -> bool:
    metric = name.split("/")[-1].split("[")[0].strip()
    return metric.endswith(TIMING_SUFFIXES)


def _verdict(name: str, was: float | None, now: float | None, tolerance: float) -> Verdict:
    if _timing(name):
        return "timing"
    if now is None:
        return "missing"
    if was is None:
        return "new"
    if was == now or (math.isnan(was) and math.isnan(now)):
        return "equal"
    if abs(was - now) <= tolerance:
        return "within_tolerance"
    return "different"


def compare_metrics(
    settings: Settings, original: RunView, run: RunView, tolerance: float
) -> list[MetricComparison]:
    """Every metric of both runs' MLflow trees, matched by candidate and name."""
    before = logged_metrics(settings, original)
    after = logged_metrics(settings, run)
    return [
        MetricComparison(
            name,
            before.get(name),
            after.get(name),
            _verdict(name, before.get(name), after.get(name), tolerance),
        )
        for name in sorted(set(before) | set(after))
    ]


def logged_metrics(settings: Settings, run: RunView) -> dict[str, float]:
    """``{"pipeline/<metric>": v, "<candidate>/<metric>[step N]": v, ...}`` of a run.

    Candidates are keyed by their estimator id and kind (stable across runs),
    every step of a metric's history is kept (one per fold).
    """
    if run.mlflow_run_id is None:
        return {}
    from mlflow.tracking import MlflowClient

    from loopml.registry.tracking import use_tracking

    use_tracking(settings)
    client = MlflowClient()
    parent = client.get_run(run.mlflow_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.mlflow_run_id}'",
        max_results=1000,
    )
    found: dict[str, float] = {}
    for label, item in [("pipeline", parent), *((_label(child), child) for child in children)]:
        for key in item.data.metrics:
            history = client.get_metric_history(item.info.run_id, key)
            steps = {point.step for point in history}
            for point in history:
                name = f"{label}/{key}" + (f" [step {point.step}]" if len(steps) > 1 else "")
                found[name] = float(point.value)
    return found


def _label(child: Any) -> str:
    """A candidate's estimator id (``lr``, ``lr_tuned``, ``blend``...), else its run name."""
    tags = child.data.tags
    return str(tags.get("loopml.estimator_id") or tags.get("mlflow.runName") or child.info.run_id)
