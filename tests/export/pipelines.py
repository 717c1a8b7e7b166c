"""loopml model pipelines fitted the way ``loopml.automl.run.finalize`` fits them, on small data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.core.profile import build_profile
from loopml.export.parity import reference_rows


def frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numbers (some missing), a small integer, a category (some missing): what loopml reads."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, n),
            "score": rng.normal(0.0, 1.0, n),
            "visits": rng.integers(0, 6, n),
            "shop": rng.choice(["grocer", "casino", "fuel"], n).astype(object),
        }
    )
    data.loc[::17, "score"] = np.nan
    data.loc[::23, "shop"] = np.nan
    return data


def target(data: pd.DataFrame, problem: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = data["score"].fillna(0) + (data["shop"] == "casino") + data["amount"] / 60
    if problem == "regression":
        return np.asarray(signal * 10 + rng.normal(0, 1, len(data)))
    return np.asarray((signal + rng.normal(0, 0.5, len(data)) > 1.2).astype(int))


def fitted(
    problem: str, estimator_id: str, data: pd.DataFrame, y: np.ndarray, **params: Any
) -> Any:
    """A deployable imblearn pipeline: preprocess, samplers, transform, model (one thread)."""
    from imblearn.pipeline import Pipeline
    from sklearn.base import clone

    from loopml.automl.catalog import estimator
    from loopml.automl.config import FeatureEngineeringParams
    from loopml.automl.preprocess import build_stages, plan_columns
    from loopml.automl.transformers import LabelledClassifier

    fe = FeatureEngineeringParams(**params)
    stages = build_stages(plan_columns(data, fe), fe, problem, 1)
    preprocess = clone(stages.preprocess).fit(data, y)
    X, rows_y = preprocess.transform(data), y
    for _, sampler in stages.samplers:
        X, rows_y = clone(sampler).fit_resample(X, rows_y)
    transform = None
    if stages.transform is not None:
        transform = clone(stages.transform).fit(X, rows_y)
        X = transform.transform(X)
    labels = np.unique(y)
    encoded = problem == "classification" and labels.tolist() != list(range(len(labels)))
    if encoded:  # automl trains on 0..k-1 and answers in the data's labels
        rows_y = np.searchsorted(labels, rows_y)
    model = estimator(problem, estimator_id).build(1, 1).fit(X, rows_y)
    if encoded or (problem == "classification" and not hasattr(model, "predict_proba")):
        model = LabelledClassifier.prefit(model, labels)
    steps: list[tuple[str, Any]] = [("preprocess", preprocess)]
    steps += [(name, clone(sampler)) for name, sampler in stages.samplers]
    if transform is not None:
        steps.append(("transform", transform))
    steps.append(("model", model))
    return Pipeline(steps)


def rows(data: pd.DataFrame) -> pd.DataFrame:
    """The reference rows a version of a model trained on ``data`` would keep."""
    return reference_rows(build_profile(data), data.head(5))
