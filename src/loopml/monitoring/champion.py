"""The champion's own answers on the reference data: the reference side of prediction drift.

Comparing the live predictions with the training labels would mix two things
(a thresholded classifier does not predict classes in the labels'
proportions), so prediction drift compares predictions with predictions: the
champion scores a sample of the reference once, when the monitor starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.lifecycle import load_trusted
from loopml.registry.models import CHAMPION, get_version, version_for_alias
from loopml.registry.reference import ModelReference


def champion_predictions(
    settings: Settings,
    name: str,
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    max_rows: int = 20_000,
    seed: int = 0,
) -> tuple[str, pd.Series] | None:
    """``(version, predictions)`` of ``name@champion`` on up to ``max_rows`` reference rows.

    ``None`` when the model has no champion yet.
    """
    version = version_for_alias(settings, name, CHAMPION)
    if version is None:
        return None
    features = frame.drop(columns=[target]) if target and target in frame.columns else frame
    sample = features.sample(n=min(max_rows, len(features)), random_state=seed)
    loaded = load_trusted(settings, ModelReference(name, version=version))  # trust checked
    try:
        predicted = loaded.score(sample).predictions
    except Exception as exc:  # MLflow raises many types: loading, schema enforcement
        raise LoopmlError(
            f"could not score the reference data with {name}@{CHAMPION} (version {version}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    values = np.asarray(predicted).ravel()
    return version, pd.Series(values, index=sample.index, name="prediction")


MAIN_METRIC_TAG = "loopml.main_metric"


def champion_main_metric(settings: Settings, name: str) -> str | None:
    """The ``main_metric`` the champion was chosen by (its version tag), if it has one."""
    version = version_for_alias(settings, name, CHAMPION)
    if version is None:
        return None
    return get_version(settings, name, version).tags.get(MAIN_METRIC_TAG) or None
