"""The continuous-training policy: per-model thresholds, and what a window's findings call for.

Schema skew means the data feeding the model is broken or has changed
shape; retraining on it would bake the fault in, so it alerts people and
blocks retraining for that window. Data drift, prediction drift and
performance decay past the thresholds ask for a retrain, subject to the
guard in the store (one in flight per model, then a cool-down).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loopml.core.errors import ConfigError
from loopml.monitoring.performance import HIGHER_IS_BETTER, MAIN_METRICS
from loopml.monitoring.window import WindowResult

SCHEMA_SKEW, DATA_DRIFT, PREDICTION_DRIFT = "schema_skew", "data_drift", "prediction_drift"
PERFORMANCE, ESTIMATED = "performance", "estimated_performance"


class MonitorPolicy(BaseModel):
    """Thresholds for one model. Every field has a default that follows Evidently's."""

    model_config = ConfigDict(extra="forbid")

    drift_share: float = Field(
        0.5, gt=0, le=1, description="Dataset drift when this share of features drifted."
    )
    feature_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-feature threshold (a distance, or a p-value for small references).",
    )
    critical_features: list[str] = Field(
        default_factory=list, description="Drift in any of these alone asks for a retrain."
    )
    retrain_on_prediction_drift: bool = True
    metric: str | None = Field(
        None,
        description="Metric watched for decay; default the champion's main_metric (F1 for a "
        "fraud spec), else accuracy, or rmse for regression.",
    )
    performance_drop: float = Field(
        0.05, gt=0, description="Decay when the metric is this fraction worse than the baseline."
    )
    baseline: dict[str, float] = Field(
        default_factory=dict,
        description="Expected metric values; default: the first labelled window checked.",
    )
    use_estimated_performance: bool = Field(
        True, description="Let the confidence-based estimate count while labels are missing."
    )
    min_rows: int = Field(100, ge=1, description="Windows with fewer rows are not judged.")
    cooldown_minutes: float = Field(360, ge=0)
    stale_after_minutes: float = Field(
        1440, gt=0, description="A retrain in flight this long is presumed lost."
    )
    fresh_data: str | None = Field(
        None, description="Data source the retrain trains on (path or URI), for the retrain hook."
    )

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    @property
    def stale_after(self) -> timedelta:
        return timedelta(minutes=self.stale_after_minutes)

    def metric_for(self, classification: bool) -> str:
        return self.metric or ("accuracy" if classification else "rmse")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is None:
            return None
        metric = MAIN_METRICS.get(value.lower(), value.lower())
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"unknown metric {value!r}; the monitor computes {', '.join(HIGHER_IS_BETTER)}"
            )
        return metric


def decay_metric(main_metric: str | None, classification: bool | None = None) -> str | None:
    """The monitor's figure for a spec's ``main_metric`` (``None``: nothing to go by)."""
    if not main_metric:
        return None
    metric = MAIN_METRICS.get(main_metric.lower())
    if metric is None or classification is None:
        return metric
    regression = metric in ("mae", "mse", "rmse", "r2")
    return metric if regression != classification else None


@dataclass(frozen=True)
class Finding:
    """One thing a window's checks found that a person or the loop should act on."""

    kind: str
    message: str
    retrain: bool


def judge(
    window: WindowResult,
    policy: MonitorPolicy,
    *,
    classification: bool,
    baseline: dict[str, float],
) -> list[Finding]:
    """What ``window`` calls for under ``policy`` (empty when all is well)."""
    if window.rows < policy.min_rows:
        return []
    findings: list[Finding] = []
    if window.schema.found:
        findings.append(Finding(SCHEMA_SKEW, f"schema skew: {window.schema.describe()}", False))
    drifted = window.drifted
    critical = [name for name in drifted if name in policy.critical_features]
    if drifted and (window.drift_share >= policy.drift_share or critical):
        why = (
            f"{len(drifted)} of {len(window.drift)} features drifted "
            f"({window.drift_share:.0%} >= {policy.drift_share:.0%})"
            if window.drift_share >= policy.drift_share
            else f"critical feature(s) drifted: {', '.join(critical)}"
        )
        findings.append(Finding(DATA_DRIFT, f"data drift: {why}: {', '.join(drifted)}", True))
    drift = window.prediction_drift
    if drift is not None and drift.drifted:
        findings.append(
            Finding(
                PREDICTION_DRIFT,
                f"prediction drift: {drift.method} {drift.score:.3g} (threshold {drift.threshold})",
                policy.retrain_on_prediction_drift,
            )
        )
    metric = policy.metric_for(classification)
    for kind, figures in ((PERFORMANCE, window.performance), (ESTIMATED, window.estimated)):
        if kind == ESTIMATED and (window.performance or not policy.use_estimated_performance):
            continue
        decay = _decay(metric, figures, baseline, policy.performance_drop)
        if decay is not None:
            label = "performance" if kind == PERFORMANCE else "estimated performance"
            findings.append(Finding(kind, f"{label} decay: {decay}", True))
    return findings


def _decay(
    metric: str, figures: dict[str, float], baseline: dict[str, float], drop: float
) -> str | None:
    value, expected = figures.get(metric), baseline.get(metric)
    if value is None or expected is None:
        return None
    higher = HIGHER_IS_BETTER.get(metric, True)
    worse = (expected - value) if higher else (value - expected)
    allowed = abs(expected) * drop
    if worse > allowed:
        return f"{metric} {value:.4g} against baseline {expected:.4g}"
    return None


def load_policies(path: Path | None) -> dict[str, MonitorPolicy]:
    """Policies by model name from a YAML/JSON file; the key ``default`` applies to the rest."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"monitor policy file {path}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"monitor policy file {path}: expected a mapping of model names to thresholds"
        )
    policies: dict[str, MonitorPolicy] = {}
    for name, fields in data.items():
        try:
            policies[str(name)] = MonitorPolicy.model_validate(fields or {})
        except ValidationError as exc:
            raise ConfigError(f"monitor policy file {path}, model {name!r}: {exc}") from exc
    return policies


def policy_for(name: str, policies: dict[str, MonitorPolicy], **overrides: Any) -> MonitorPolicy:
    """The policy of model ``name`` (or the default one), with ``overrides`` that are not None."""
    base = policies.get(name) or policies.get("default") or MonitorPolicy()
    changes = {key: value for key, value in overrides.items() if value is not None}
    return base.model_copy(update=changes) if changes else base
