"""Two registered versions scored on the same rows, read with the gate's rules.

``loopml models compare NAME V1 V2 --data PATH`` is the gate by hand: both
versions go through the one trusted loader and the one scoring function the
gate uses (:func:`loopml.steps.evaluate.score_frame`), every metric is shown
side by side, and the main metric is judged with the gate's own
:func:`~loopml.steps.gate.better_by` and :func:`~loopml.steps.gate.clears`
(``V2`` playing the challenger, ``V1`` the champion). Not a step: no run is
recorded and no alias moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from loopml.core.errors import ConfigError, InputFileError, LoopmlError
from loopml.core.settings import Settings
from loopml.core.vocabulary import LOWER_IS_BETTER, canonical_metric
from loopml.steps.gate import better_by, clears


@dataclass(frozen=True)
class TrainingFacts:
    """What the run that produced a version recorded: target, problem type, gate figures."""

    target: str | None
    problem_type: str | None
    main_metric: str | None
    threshold: float | None
    min_delta: float


@dataclass(frozen=True)
class Comparison:
    """Both versions' metrics on the same rows and the gate's reading of the main metric."""

    name: str
    v1: str
    v2: str
    rows: int
    target: str
    problem_type: str
    main_metric: str
    threshold: float | None
    min_delta: float
    scores: dict[str, tuple[float | None, float | None]]
    winner: str
    v2_clears: bool
    would_promote: bool
    reason: str

    def better(self, metric: str) -> str:
        """``v1``, ``v2``, ``tie``, or ``-`` when either score is missing."""
        one, two = self.scores[metric]
        if one is None or two is None or math.isnan(one) or math.isnan(two):
            return "-"
        gain = better_by(metric, two, one)
        return "tie" if gain == 0 else ("v2" if gain > 0 else "v1")


def training_facts(settings: Settings, run_id: str | None) -> TrainingFacts:
    """Target, problem type, main metric and gate figures of the pipeline run behind a version."""
    from mlflow.tracking import MlflowClient

    from loopml.registry.tracking import use_tracking

    empty = TrainingFacts(None, None, None, None, 0.0)
    if not run_id:
        return empty
    use_tracking(settings)
    client = MlflowClient()
    try:
        params = client.get_run(run_id).data.params
    except Exception:  # a deleted or foreign run: the caller's options decide
        return empty

    def number(key: str) -> float | None:
        try:
            value = float(params[key])
        except (KeyError, ValueError):
            return None
        return None if math.isnan(value) else value

    return TrainingFacts(
        target=params.get("target"),
        problem_type=params.get("problem_type"),
        main_metric=params.get("main_metric"),
        threshold=number("gate_threshold"),
        min_delta=number("gate_min_delta") or 0.0,
    )


def compare_versions(
    settings: Settings,
    name: str,
    v1: str,
    v2: str,
    frame: Any,
    *,
    target: str | None = None,
    metric: str | None = None,
    threshold: float | None = None,
    min_delta: float | None = None,
) -> Comparison:
    """Score versions ``v1`` and ``v2`` of ``name`` on ``frame``; every metric and the verdict.

    The target, problem type, main metric and the gate's threshold and
    min_delta default to what the run behind ``v2`` recorded.
    """
    from loopml.lifecycle import load_trusted
    from loopml.registry.models import get_version
    from loopml.registry.reference import ModelReference
    from loopml.steps.evaluate import score_frame

    if v1 == v2:
        raise ConfigError(f"give two different versions of {name!r} (both are {v1})")
    versions = {v: get_version(settings, name, v) for v in (v1, v2)}
    pipeline_run = versions[v2].tags.get("loopml.pipeline_mlflow_run_id") or versions[v2].run_id
    facts = training_facts(settings, pipeline_run)
    target = target or facts.target
    if not target:
        raise ConfigError(
            f"version {v2} of {name!r} records no target column; give it with --target"
        )
    if target not in frame.columns:
        shown = ", ".join(str(c) for c in list(frame.columns)[:20])
        raise InputFileError(
            f"the data has no target column {target!r} to score against (columns: {shown}); "
            "give labelled rows, or name the label column with --target"
        )
    problem_type = facts.problem_type or "classification"
    main = canonical_metric(metric or facts.main_metric or "") or (
        "Accuracy" if problem_type == "classification" else "R2"
    )
    scored: dict[str, dict[str, float]] = {}
    for version in (v1, v2):
        model = load_trusted(settings, ModelReference(name, version=version)).pipeline
        if model is None:
            raise LoopmlError(f"version {version} of {name!r} is not a scikit-learn pipeline")
        try:
            scored[version] = score_frame(model, frame, target, problem_type)[3]
        except (ValueError, KeyError) as exc:
            raise InputFileError(
                f"version {version} of {name!r} cannot score these rows "
                f"({type(exc).__name__}: {exc}); are the feature columns the ones it trained on?"
            ) from exc
    metrics = sorted(set(scored[v1]) | set(scored[v2]))
    if main not in metrics:
        raise ConfigError(
            f"metric {main!r} is not one of {', '.join(metrics)}; give one with --metric"
        )
    scores = {m: (_value(scored[v1].get(m)), _value(scored[v2].get(m))) for m in metrics}
    threshold = facts.threshold if threshold is None else threshold
    min_delta = facts.min_delta if min_delta is None else min_delta
    one, two = scores[main]
    gain = better_by(main, two or 0.0, one or 0.0)
    passes = clears(main, two or 0.0, threshold)
    winner = "tie" if gain == 0 else ("v2" if gain > 0 else "v1")
    promote = passes and gain > 0 and gain >= min_delta
    direction = "lower" if main in LOWER_IS_BETTER else "higher"
    bar = "" if threshold is None else f", threshold {threshold:g}"
    reason = (
        f"{main} ({direction} is better): version {v2} {two:.4f} vs version {v1} {one:.4f}, "
        f"{gain:+.4f} for {v2}; with min_delta {min_delta:g}{bar} the gate "
        + ("would promote" if promote else "would refuse")
        + f" version {v2} over version {v1}"
    )
    return Comparison(
        name=name,
        v1=v1,
        v2=v2,
        rows=len(frame),
        target=target,
        problem_type=problem_type,
        main_metric=main,
        threshold=threshold,
        min_delta=min_delta,
        scores=scores,
        winner=winner,
        v2_clears=passes,
        would_promote=promote,
        reason=reason,
    )


def _value(value: float | None) -> float | None:
    return None if value is None else float(value)
