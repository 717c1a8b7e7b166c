"""Log a fitted loopml pipeline as loopml's train step does and register it through loopml."""

from __future__ import annotations

from typing import Any

import pandas as pd

from loopml.core.settings import Settings


def register_pipeline(
    settings: Settings, name: str, pipeline: Any, data: pd.DataFrame, *, profile: bool = True
) -> str:
    """A new version of ``name`` (input example, reference profile, trust record); its number."""
    from loopml.core.profile import build_profile
    from loopml.lifecycle import register
    from loopml.registry.tracking import ensure_experiment, use_tracking
    from loopml.steps.tracking import log_pipeline

    mlflow = use_tracking(settings)
    experiment = ensure_experiment(settings, f"export-{name}")
    with mlflow.start_run(experiment_id=experiment) as run:
        uri = log_pipeline(
            mlflow, pipeline, data.head(5), profile=build_profile(data) if profile else None
        )
    registered, _ = register(settings, uri, name, {}, run_id=run.info.run_id)
    return registered.version
