"""Every PyCaret estimator id trains, scores and predicts from raw rows, for both problem types."""

from __future__ import annotations

import numpy as np

from loopml.automl.catalog import CATALOG
from loopml.automl.config import CLASSIFIERS, REGRESSORS
from tests.automl.frames import classification, features, raw, regression, run

COLUMNS = ["Model", "Accuracy", "AUC", "Recall", "Prec.", "F1", "Kappa", "MCC", "TT (Sec)"]


def test_the_catalog_covers_every_id_with_pycarets_names() -> None:
    assert set(CATALOG["classification"]) == set(CLASSIFIERS)
    assert set(CATALOG["regression"]) == set(REGRESSORS)
    assert CATALOG["classification"]["rf"].name == "Random Forest Classifier"
    assert CATALOG["classification"]["lightgbm"].name == "Light Gradient Boosting Machine"
    assert CATALOG["classification"]["knn"].name == "K Neighbors Classifier"
    assert CATALOG["regression"]["lar"].name == "Least Angle Regression"


def test_threads_are_set_explicitly() -> None:
    lightgbm = CATALOG["classification"]["lightgbm"].build(1, 1)
    xgboost = CATALOG["regression"]["xgboost"].build(1, 2)
    assert lightgbm.get_params()["n_jobs"] == 1 and lightgbm.get_params()["verbose"] == -1
    assert xgboost.get_params()["n_jobs"] == 2


def test_every_classifier_id_trains_and_predicts_raw_rows() -> None:
    frame = classification()
    result = run(frame, "classification", "F1", raw(estimator_list=list(CLASSIFIERS)))
    assert {c.id for c in result.candidates} == set(CLASSIFIERS)
    assert list(result.leaderboard.columns) == COLUMNS
    f1 = result.leaderboard["F1"].tolist()
    assert f1 == sorted(f1, reverse=True)
    rows = features(frame).head(7)
    for candidate in result.candidates:
        assert set(candidate.model.predict(rows)) <= {0, 1}, candidate.id
        proba = candidate.model.predict_proba(rows)
        assert proba.shape == (7, 2) and np.allclose(proba.sum(axis=1), 1), candidate.id
        assert len(candidate.fold_metrics["F1"]) == 2
    by_id = {c.id: c for c in result.candidates}
    assert by_id["rf"].mean_metrics["F1"] > 0.6
    assert by_id["rf"].mean_metrics["AUC"] > 0.8
    assert by_id["dummy"].mean_metrics["F1"] == 0.0  # always predicts the majority class
    assert by_id["dummy"].mean_metrics["AUC"] == 0.5


def test_every_regressor_id_trains_and_predicts_raw_rows() -> None:
    frame = regression()
    result = run(frame, "regression", "RMSE", raw(estimator_list=list(REGRESSORS)))
    assert {c.id for c in result.candidates} == set(REGRESSORS)
    assert list(result.leaderboard.columns) == [
        "Model",
        "MAE",
        "MSE",
        "RMSE",
        "R2",
        "RMSLE",
        "MAPE",
        "TT (Sec)",
    ]
    rmse = result.leaderboard["RMSE"].tolist()
    assert rmse == sorted(rmse)  # lower is better: best first
    by_id = {c.id: c for c in result.candidates}
    assert by_id["lr"].mean_metrics["R2"] > 0.95 > 0.0 > by_id["dummy"].mean_metrics["R2"] - 0.1
    assert result.best.id in {"lr", "lar", "ridge", "huber"}
    for candidate in result.candidates:
        assert candidate.model.predict(features(frame).head(3)).shape == (3,), candidate.id


def test_multiclass_with_text_labels() -> None:
    frame = classification(300, labels=("low", "mid", "high"))
    result = run(frame, "classification", "Accuracy", raw(estimator_list=["lr", "xgboost", "nb"]))
    assert list(result.labels) == ["high", "low", "mid"]
    for candidate in result.candidates:
        predicted = candidate.model.predict(features(frame).head(20))
        assert set(predicted) <= {"low", "mid", "high"}
        assert candidate.model.predict_proba(features(frame).head(2)).shape == (2, 3)
        assert 0.5 < candidate.mean_metrics["AUC"] <= 1.0
    assert result.best.mean_metrics["Accuracy"] > 0.6
