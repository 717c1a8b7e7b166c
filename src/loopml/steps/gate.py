"""The ``validate_model`` step: the champion/challenger gate.

The challenger (this run's trained model) and the current champion are
scored by the same function on the same frame, the holdout ``train_model``
kept back. The challenger becomes champion only if it clears the absolute
``threshold`` and beats the champion by at least ``min_delta``; the champion
it replaces stays reachable as ``previous``. With ``require_approval`` a
passing challenger stays registered, tagged ``loopml.approval=pending``, until
``loopml models approve`` (or the review console) promotes it; the alerts channel
is told, with a link to its console page (``loopml.lifecycle.notify``). A smoke run
or a reproduction scores both models the same way and records the verdict it would
have reached as ``held``, moving no alias.

Place it after ``train_model``. It needs a registered version to judge, so
it registers the challenger itself when no ``register_model`` did so earlier
in the run (one registration per run either way); a ``register_model``
before or after it reuses that version. Promotion is the gate's alone: with
a gate in the pipeline ``register_model`` never touches ``champion``, so
nothing here takes back what registration did.

With ``finalize: true`` the challenger was refitted on the holdout too, so
its holdout figure flatters it; keep ``finalize`` off in gated specs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from loopml.core.context import GateDecision, GateVerdict, StepContext
from loopml.core.errors import DataError
from loopml.core.validation import choice_error
from loopml.core.vocabulary import LOWER_IS_BETTER, METRICS, canonical_metric
from loopml.steps.base import StepParams, step
from loopml.steps.register import GATE_STEP, give_alias, held_reason, register_once


class GateParams(StepParams):
    """What a challenger must achieve to become champion."""

    model_name: str | None = Field(
        default=None, description="Registered model name; default experiment_config.model_name."
    )
    metric: str | None = Field(
        default=None, description="Metric to compare on; default experiment_config.main_metric."
    )
    threshold: float | None = Field(
        default=None,
        description="Absolute bar the challenger must clear (at most, for error metrics).",
    )
    min_delta: float = Field(
        default=0.0, ge=0, description="How much better than the champion it must be."
    )
    require_approval: bool = Field(
        default=False, description="Leave a passing challenger waiting for `models approve`."
    )
    frame: str = Field(default="holdout", description="Frame both models are scored on.")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        problem = (info.context or {}).get("problem_type")
        allowed = METRICS.get(str(problem), sum(METRICS.values(), ()))
        metric = canonical_metric(value)
        if metric is None or metric not in allowed:
            raise choice_error("metric", value, allowed)
        return metric


def better_by(metric: str, challenger: float, champion: float) -> float:
    """How much better ``challenger`` is than ``champion`` (negative when worse)."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def clears(metric: str, score: float, threshold: float | None) -> bool:
    if threshold is None:
        return True
    return score <= threshold if metric in LOWER_IS_BETTER else score >= threshold


@step(
    GATE_STEP,
    params=GateParams,
    outputs=("registered", "gate"),
    inputs=("trained", "models/best", "data/{frame}"),
)
def validate_model(context: StepContext, params: GateParams) -> None:
    """Promote the challenger only if it beats the champion on the same holdout."""
    from loopml.lifecycle import promote
    from loopml.registry.models import APPROVAL_TAG, CHAMPION, set_version_tag, version_for_alias
    from loopml.registry.tracking import use_tracking
    from loopml.steps.tracking import metric_key

    if "best" not in context.models:
        raise DataError("validate_model has no challenger to judge: put train_model before it")
    experiment = context.experiment
    name = params.model_name or experiment.model_name
    metric = params.metric or experiment.main_metric
    frame = context.require_frame(params.frame)
    registered = register_once(context, name)
    if not context.holds_aliases:
        give_alias(context, registered, "challenger")
    version = registered.version
    champion = version_for_alias(context.settings, name, CHAMPION)

    context.progress(f"scoring challenger and champion on {len(frame)} rows", 0, 2)
    challenger_score = _score(context, context.models["best"], frame, metric)
    champion_score = None
    if champion is not None and champion != version:
        try:
            champion_score = _score(context, _load(context, name, champion), frame, metric)
        except (ValueError, KeyError) as exc:
            raise DataError(
                f"champion version {champion} of {name!r} cannot score the frame "
                f"{params.frame!r} ({type(exc).__name__}: {exc}); were the columns changed? "
                f"`loopml models promote {name} {version}` decides by hand"
            ) from exc
    context.progress(f"scoring challenger and champion on {len(frame)} rows", 2, 2)

    decision, reason = _decide(params, metric, version, challenger_score, champion, champion_score)
    if context.holds_aliases:
        decision, reason = "held", f"{held_reason(context)}; the gate found: {decision}, {reason}"
    context.gate = GateDecision(
        decision=decision,
        reason=reason,
        model_name=name,
        metric=metric,
        frame=params.frame,
        rows=len(frame),
        challenger_version=version,
        challenger_score=challenger_score,
        champion_version=champion,
        champion_score=champion_score,
        threshold=params.threshold,
        min_delta=params.min_delta,
    )

    settings = context.settings
    if decision == "promoted":
        promote(settings, name, version, reason=f"gate: {reason}", run_id=context.run_id)
    if decision == "awaiting_approval":
        set_version_tag(settings, name, version, APPROVAL_TAG, "pending")
    set_version_tag(settings, name, version, "loopml.gate", decision)
    set_version_tag(settings, name, version, "loopml.gate.reason", reason[:4000])
    if decision == "awaiting_approval":  # after the tags, so the linked page shows the wait
        from loopml.lifecycle.notify import notify_awaiting_approval

        notify_awaiting_approval(settings, name, version, reason=reason, run_id=context.run_id)

    mlflow = use_tracking(settings)
    key = metric_key(metric)
    figures = {f"gate_challenger_{key}": challenger_score}
    if champion_score is not None:
        figures[f"gate_champion_{key}"] = champion_score
    mlflow.log_metrics(figures)
    mlflow.log_params(
        {
            "gate_metric": metric,
            "gate_threshold": str(params.threshold),
            "gate_min_delta": params.min_delta,
        }
    )
    mlflow.set_tags(
        {
            "loopml.gate.decision": decision,
            "loopml.gate.reason": reason[:4000],
            "loopml.gate.challenger_version": version,
            "loopml.gate.champion_version": champion or "",
        }
    )


def _decide(
    params: GateParams,
    metric: str,
    version: str,
    score: float,
    champion: str | None,
    champion_score: float | None,
) -> tuple[GateVerdict, str]:
    bar = "" if params.threshold is None else f" threshold {params.threshold:g}"
    if champion == version:
        return "already_champion", f"version {version} is already champion"
    if not clears(metric, score, params.threshold):
        return "refused", f"{metric} {score:.4f} does not clear the{bar}"
    if champion is not None and champion_score is not None:
        gain = better_by(metric, score, champion_score)
        if gain <= 0 or gain < params.min_delta:
            return "refused", (
                f"{metric} {score:.4f} vs champion version {champion}'s {champion_score:.4f}: "
                f"{'gains' if gain > 0 else 'changes by'} {gain:+.4f}, needs more than 0 and at "
                f"least min_delta {params.min_delta:g}"
            )
        why = (
            f"{metric} {score:.4f} beats champion version {champion}'s {champion_score:.4f} by "
            f"{gain:+.4f} (min_delta {params.min_delta:g})"
            + (f" and clears the{bar}" if bar else "")
        )
    else:
        why = f"no champion yet; {metric} {score:.4f}" + (f" clears the{bar}" if bar else "")
    if params.require_approval:
        return "awaiting_approval", f"{why}; waiting for approval"
    return "promoted", why


def _score(context: StepContext, model: Any, frame: Any, metric: str) -> float:
    from loopml.steps.evaluate import score_frame

    target = context.experiment.target
    if target not in frame.columns:
        raise DataError(f"the gate's frame has no target column {target!r} to score against")
    _, _, _, metrics = score_frame(model, frame, target, context.experiment.problem_type)
    return float(metrics[metric])


def _load(context: StepContext, name: str, version: str) -> Any:
    from loopml.core.errors import UntrustedModelError
    from loopml.lifecycle import load_trusted
    from loopml.registry.reference import ModelReference

    try:  # the one loader: the champion's files are trust-checked before unpickling
        return load_trusted(context.settings, ModelReference(name, version=version)).pipeline
    except UntrustedModelError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot load champion version {version} of {name!r} to compare with: "
            f"{type(exc).__name__}: {exc}. `loopml models promote {name} VERSION` decides by hand"
        ) from exc
