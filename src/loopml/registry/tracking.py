"""Pointing MLflow at loopml's stores and finding or making experiments.

MLflow keeps global state (the tracking URI); :func:`use_tracking` sets it
from :class:`Settings` in one place, so every face (CLI, worker, server) logs
to the same store.
"""

from __future__ import annotations

import re
from typing import Any

from loopml.core.errors import ConfigError
from loopml.core.settings import Settings


def use_tracking(settings: Settings) -> Any:
    """Point MLflow at the configured tracking and registry URI; the ``mlflow`` module.

    MLflow 3.17 refuses to load any scikit-learn model unless
    ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is true; loopml's registry holds the
    models loopml trained, so ``trust_registry_models`` (on by default) sets it.
    """
    import os

    import mlflow

    if settings.trust_registry_models:
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    if settings.tracking.startswith("sqlite:///"):
        settings.ensure_home()
    mlflow.set_tracking_uri(settings.tracking)
    mlflow.set_registry_uri(settings.tracking)
    return mlflow


def ensure_experiment(settings: Settings, name: str) -> str:
    """The id of experiment ``name``, creating it with artifacts under the artifact root."""
    mlflow = use_tracking(settings)
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                client.restore_experiment(existing.experiment_id)
            return str(existing.experiment_id)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "experiment"
        location = f"{settings.artifacts.rstrip('/')}/{slug}"
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:  # another worker created it a moment ago
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return str(client.get_experiment_by_name(name).experiment_id)
    except MlflowException as exc:
        raise ConfigError(
            f"MLflow at LOOPML_TRACKING_URI={settings.tracking} refused experiment {name!r}: "
            f"{exc.message}"
        ) from exc
