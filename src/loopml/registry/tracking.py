"""Pointing MLflow at loopml's stores and finding or making experiments.

MLflow keeps global state (the tracking URI); :func:`use_tracking` sets it
from :class:`Settings` in one place, so every face (CLI, worker, server) logs
to the same store.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from loopml.core.errors import ConfigError
from loopml.core.settings import Settings

log = logging.getLogger(__name__)


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
    """The id of experiment ``name``, creating it if needed.

    Its artifacts go under ``LOOPML_ARTIFACT_ROOT`` when one is configured (always, with a
    local tracking store). With a tracking server and no explicit root, the server chooses
    (its ``--default-artifact-root`` or its ``mlflow-artifacts:`` proxy): a client's own
    disk is no place for a model that a server on another machine must load.
    """
    mlflow = use_tracking(settings)
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                client.restore_experiment(existing.experiment_id)
            _warn_if_local(settings, existing)
            return str(existing.experiment_id)
        location = _artifact_location(settings, name)
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


def _artifact_location(settings: Settings, name: str) -> str | None:
    """Where experiment ``name`` keeps artifacts; ``None`` leaves it to the tracking server."""
    root = settings.artifacts
    if root is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "experiment"
    return f"{root.rstrip('/')}/{slug}"


def _warn_if_local(settings: Settings, experiment: Any) -> None:
    """Say so when a tracking server's experiment keeps artifacts on some machine's own disk.

    Such an experiment was made by a client that chose a local root (loopml before it left
    the choice to the server did): its models load only where they were trained.
    """
    location = str(experiment.artifact_location or "")
    if settings.tracking_is_remote and settings.artifacts is None and _is_local(location):
        log.warning(
            "MLflow experiment %r keeps its artifacts at %s, a local path, although tracking "
            "goes to the server %s: models logged there load only on the machine that trained "
            "them. Rename or delete the experiment so the server creates it on its artifact "
            "store, or set LOOPML_ARTIFACT_ROOT to shared storage (s3://...).",
            experiment.name,
            location,
            settings.tracking,
        )


def _is_local(location: str) -> bool:
    return location.startswith(("/", "file:")) or ":" not in location
