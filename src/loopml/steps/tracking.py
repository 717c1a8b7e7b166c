"""Logging candidates to MLflow: one nested run per model, the parent holding the comparison.

Kept apart from the training logic so every step that produces models (train,
tune, ensemble, a plugin) tracks them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_MAX_PARAM = 500


@dataclass
class CandidateRecord:
    """What MLflow gets for one candidate model."""

    name: str
    kind: str
    params: Mapping[str, Any]
    fold_metrics: Mapping[str, Sequence[float]]
    mean_metrics: Mapping[str, float]
    std_metrics: Mapping[str, float]
    holdout_metrics: Mapping[str, float]
    fit_seconds: float
    figures: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


def metric_key(name: str) -> str:
    """MLflow-safe metric name: ``Prec.`` becomes ``Prec``."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name).rstrip(".") or "metric"


def log_candidate(
    mlflow: Any, record: CandidateRecord, model: Any | None, model_logger: Any | None = None
) -> tuple[str, str | None]:
    """A nested run for ``record`` (model logged when given); (run id, model URI)."""
    parent = mlflow.active_run()
    with mlflow.start_run(
        run_name=record.name,
        nested=True,
        experiment_id=parent.info.experiment_id if parent is not None else None,
        tags={"loopml.kind": record.kind, **record.tags},
    ) as run:
        params = {key: _param(value) for key, value in record.params.items()}
        if params:
            mlflow.log_params(params)
        metrics: dict[str, float] = {"fit_time_s": float(record.fit_seconds)}
        for metric, value in record.mean_metrics.items():
            metrics[f"cv_{metric_key(metric)}_mean"] = float(value)
        for metric, value in record.std_metrics.items():
            metrics[f"cv_{metric_key(metric)}_std"] = float(value)
        for metric, value in record.holdout_metrics.items():
            metrics[f"holdout_{metric_key(metric)}"] = float(value)
        mlflow.log_metrics({key: value for key, value in metrics.items() if value == value})
        for metric, values in record.fold_metrics.items():
            for fold, value in enumerate(values):
                if value == value:  # NaN stays out of MLflow
                    mlflow.log_metric(f"cv_{metric_key(metric)}", float(value), step=fold)
        for name, figure in record.figures.items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        model_uri = model_logger(model) if model is not None and model_logger else None
        return run.info.run_id, model_uri


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."


_MODEL_REQUIREMENTS = (
    "mlflow",
    "scikit-learn",
    "imbalanced-learn",
    "lightgbm",
    "xgboost-cpu",
    "cloudpickle",
    "pandas",
    "numpy",
    "scipy",
    "loopml",
)


def model_requirements() -> list[str]:
    """Pinned requirements of a loopml model, read from this environment.

    Given explicitly so MLflow does not load the model in a subprocess to
    guess them, which costs seconds per logged model.
    """
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in _MODEL_REQUIREMENTS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pinned


def log_pipeline(
    mlflow: Any, pipeline: Any, example: Any, name: str = "model", profile: Any = None
) -> str:
    """Log a fitted scikit-learn/imbalanced-learn pipeline with signature and input example.

    Cloudpickle rather than MLflow's default skops: skops refuses LightGBM,
    XGBoost and loopml's own estimators unless each type is listed as
    trusted, and MLflow 3.17 gates loading of every format behind the same
    flag anyway (see ``Settings.trust_registry_models``). A reference profile
    (from ``validate_data``) goes into the model's own artifacts as
    ``reference_profile.json``, so whoever loads a model version finds it.
    """
    from mlflow.models import infer_signature

    output = pipeline.predict(example)
    signature = infer_signature(example, output)
    info = mlflow.sklearn.log_model(
        pipeline,
        name=name,
        signature=signature,
        input_example=example,
        serialization_format="cloudpickle",
        pip_requirements=model_requirements(),
    )
    if profile is not None:
        log_profile(mlflow, info.model_id, profile)
    return str(info.model_uri)


def log_profile(mlflow: Any, model_id: str, profile: Any) -> None:
    """Put ``profile`` (a ReferenceProfile) next to the logged model ``model_id``."""
    import tempfile
    from pathlib import Path

    from loopml.core.profile import PROFILE_FILE

    with tempfile.TemporaryDirectory(prefix="loopml-profile-") as folder:
        path = Path(folder) / PROFILE_FILE
        path.write_text(profile.to_json())
        mlflow.MlflowClient().log_model_artifact(model_id, str(path))
