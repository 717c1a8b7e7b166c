"""Each feature-engineering switch, in PyCaret's order, inside one picklable pipeline."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.automl.transformers import RemoveMulticollinearity
from tests.automl.frames import classification, features, raw, run


@pytest.mark.parametrize(
    ("switch", "steps"),
    [
        ({"fix_imbalance": True}, ["preprocess", "fix_imbalance", "model"]),
        (
            {"fix_imbalance": True, "fix_imbalance_method": "randomundersampler"},
            ["preprocess", "fix_imbalance", "model"],
        ),
        ({"fix_imbalance": True, "fix_imbalance_method": "adasyn"}, None),
        ({"pca": True, "pca_components": 3}, ["preprocess", "transform", "model"]),
        ({"pca": True, "pca_method": "kernel", "pca_components": 3}, None),
        ({"pca": True, "pca_method": "incremental", "pca_components": 0.5}, None),
        ({"normalize": True, "normalize_method": "robust"}, ["preprocess", "transform", "model"]),
        ({"normalize": True, "normalize_method": "minmax"}, None),
        ({"trigonometry_features": True}, None),
        ({"polynomial_features": True, "polynomial_degree": 3}, None),
        ({"remove_outliers": True}, ["preprocess", "remove_outliers", "model"]),
        ({"remove_outliers": True, "outliers_method": "lof"}, None),
        ({"feature_selection": True, "n_features_to_select": 0.5}, None),
        ({"feature_selection": True, "feature_selection_method": "univariate"}, None),
        (
            {
                "feature_selection": True,
                "feature_selection_method": "sequential",
                "n_features_to_select": 3,
            },
            None,
        ),
        ({"remove_multicollinearity": True, "multicollinearity_threshold": 0.5}, None),
        ({"numeric_imputation": "median", "categorical_imputation": "missing"}, None),
        ({"numeric_imputation": -1}, None),
        ({"ignore_features": ["color"]}, None),
        ({"max_encoding_ohe": 1}, None),
        ({"categorical_features": ["x5"], "max_encoding_ohe": 300}, None),
    ],
    ids=lambda value: (
        "+".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else ""
    ),
)
def test_each_feature_engineering_switch(switch: dict[str, Any], steps: list[str] | None) -> None:
    frame = classification()
    frame.loc[::17, "x1"] = np.nan
    frame.loc[::23, "color"] = None
    result = run(frame, "classification", "F1", raw(switch, estimator_list=["lr"]))
    (candidate,) = result.candidates
    assert candidate.mean_metrics["Accuracy"] > 0.6
    model = pickle.loads(pickle.dumps(candidate.model))
    rows = features(frame).head(5)
    assert np.array_equal(model.predict(rows), candidate.model.predict(rows))
    if steps is not None:
        assert [name for name, _ in model.steps] == steps
    assert len(candidate.feature_names) == candidate.estimator.n_features_in_


def test_samplers_come_before_pca_and_feature_names_follow_the_transform() -> None:
    frame = classification(300, weights=[0.85])
    result = run(
        frame,
        "classification",
        "F1",
        raw(
            {"fix_imbalance": True, "normalize": True, "pca": True, "pca_components": 4},
            estimator_list=["lr"],
        ),
    )
    model = result.best.model
    assert [name for name, _ in model.steps] == [
        "preprocess",
        "fix_imbalance",
        "transform",
        "model",
    ]
    assert list(model.named_steps["transform"].named_steps) == ["normalize", "pca"]
    assert result.best.feature_names == ["pca0", "pca1", "pca2", "pca3"]
    # As in PyCaret, PCA learned from the SMOTE-balanced training rows: twice the majority.
    pca = model.named_steps["transform"].named_steps["pca"]
    majority_in_training = int((frame["target"] == 0).sum() - (result.y_holdout == 0).sum())
    assert pca.n_samples_ == 2 * majority_in_training


def test_the_model_predicts_rows_it_has_never_seen_kinds_of() -> None:
    frame = classification()
    result = run(frame, "classification", "F1", raw(estimator_list=["dt"]))
    rows = features(frame).head(3).copy()
    rows["color"] = ["green", None, "red"]  # unseen and missing categories
    rows.loc[0, "x2"] = np.nan
    rows["extra"] = 1.0  # a column the model does not use
    assert len(result.best.model.predict(rows)) == 3


def test_dates_booleans_and_nullable_integers() -> None:
    frame = classification()
    frame["when"] = pd.date_range("2024-01-01", periods=len(frame), freq="h").astype(str)
    frame["flag"] = frame["x3"] > 0
    frame["count"] = pd.array(np.arange(len(frame)) % 7, dtype="Int64")
    frame.loc[5, "count"] = pd.NA
    result = run(
        frame,
        "classification",
        "F1",
        raw({"date_features": ["when"]}, estimator_list=["dt"]),
    )
    names = result.best.feature_names
    assert {"when_hour", "when_weekday", "flag", "count"} <= set(names)
    assert len(result.best.model.predict(features(frame).tail(4))) == 4


def test_remove_multicollinearity_keeps_the_feature_closest_to_the_target() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    strong = y + rng.normal(scale=0.1, size=200)
    twin = strong + rng.normal(scale=0.05, size=200)  # correlated with strong, a bit noisier
    other = rng.normal(size=200)
    X = np.column_stack([twin, other, strong])
    kept = RemoveMulticollinearity(0.9).fit(X, y)
    assert list(kept.keep_) == [1, 2]
    assert list(kept.get_feature_names_out(["twin", "other", "strong"])) == ["other", "strong"]
    assert kept.transform(X).shape == (200, 2)
