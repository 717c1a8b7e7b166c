"""AutoML on small real data: every estimator, every feature switch, tune, ensemble, errors."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression

from loopml.automl.config import CLASSIFIERS, REGRESSORS, TrainParams
from loopml.automl.metrics import classification_scores, regression_scores
from loopml.automl.run import AutoMLResult, run_automl
from loopml.core.errors import DataError


def _classification(rows: int = 240, labels: tuple[Any, ...] = (0, 1)) -> pd.DataFrame:
    X, y = make_classification(rows, 6, n_informative=4, weights=[0.7], random_state=3)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["color"] = np.where(X[:, 0] > 0, "red", "blue")
    frame["target"] = np.asarray(labels)[y]
    return frame


def _regression(rows: int = 200) -> pd.DataFrame:
    X, y = make_regression(rows, 5, noise=5.0, random_state=4)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["target"] = y + 300  # positive, so RMSLE and MAPE are meaningful
    return frame


def _params(**modeling: Any) -> dict[str, Any]:
    return {"modeling_params": {"fold": 2, "session_id": 7, "n_jobs": 2, **modeling}}


def _run(frame: pd.DataFrame, problem: str, metric: str, raw: dict[str, Any]) -> AutoMLResult:
    params = TrainParams.model_validate(raw, context={"problem_type": problem})
    return run_automl(frame, "target", problem, metric, params)


def test_every_classifier_id_trains_and_predicts_raw_rows() -> None:
    frame = _classification()
    result = _run(frame, "classification", "F1", _params(estimator_list=list(CLASSIFIERS)))
    assert {c.id for c in result.candidates} == set(CLASSIFIERS)
    assert list(result.leaderboard.columns) == [
        "Model",
        "Accuracy",
        "AUC",
        "Recall",
        "Prec.",
        "F1",
        "Kappa",
        "MCC",
        "TT (Sec)",
    ]
    f1 = result.leaderboard["F1"].tolist()
    assert f1 == sorted(f1, reverse=True)
    raw = frame.drop(columns="target").head(7)
    for candidate in result.candidates:
        predicted = candidate.model.predict(raw)
        assert set(predicted) <= {0, 1}, candidate.id
    best = {c.id: c for c in result.candidates}
    assert best["rf"].mean_metrics["F1"] > best["dummy"].mean_metrics["F1"]


def test_every_regressor_id_trains_and_predicts_raw_rows() -> None:
    frame = _regression()
    result = _run(frame, "regression", "RMSE", _params(estimator_list=list(REGRESSORS)))
    assert {c.id for c in result.candidates} == set(REGRESSORS)
    rmse = result.leaderboard["RMSE"].tolist()
    assert rmse == sorted(rmse)  # lower is better, best first
    by_id = {c.id: c for c in result.candidates}
    assert by_id["lr"].mean_metrics["R2"] > 0.9 > by_id["dummy"].mean_metrics["R2"]
    assert by_id["lr"].model.predict(frame.drop(columns="target").head(3)).shape == (3,)


@pytest.mark.parametrize(
    "switch",
    [
        {"fix_imbalance": True},
        {"fix_imbalance": True, "fix_imbalance_method": "randomundersampler"},
        {"pca": True, "pca_components": 3},
        {"pca": True, "pca_method": "kernel", "pca_components": 3},
        {"normalize": True, "normalize_method": "robust"},
        {"trigonometry_features": True},
        {"polynomial_features": True},
        {"remove_outliers": True},
        {"feature_selection": True, "n_features_to_select": 0.5},
        {"feature_selection": True, "feature_selection_method": "univariate"},
        {"remove_multicollinearity": True, "multicollinearity_threshold": 0.5},
        {"numeric_imputation": "median", "categorical_imputation": "missing"},
        {"ignore_features": ["color"]},
        {"max_encoding_ohe": 1},
    ],
    ids=lambda s: "+".join(f"{k}={v}" for k, v in s.items()),
)
def test_each_feature_engineering_switch(switch: dict[str, Any]) -> None:
    frame = _classification()
    frame.loc[::17, "x1"] = np.nan
    frame.loc[::23, "color"] = None
    result = _run(
        frame,
        "classification",
        "F1",
        {"feature_engineering_params": switch, **_params(estimator_list=["lr"])},
    )
    (candidate,) = result.candidates
    assert candidate.mean_metrics["Accuracy"] > 0.6
    model = pickle.loads(pickle.dumps(candidate.model))
    assert len(model.predict(frame.drop(columns="target").head(5))) == 5
    names = [step for step, _ in model.steps]
    if switch.get("fix_imbalance"):
        assert "fix_imbalance" in names
    if switch.get("pca"):
        assert "pca" in model.named_steps["preprocess"].named_steps


def test_date_features_are_expanded() -> None:
    frame = _classification()
    frame["when"] = pd.date_range("2024-01-01", periods=len(frame), freq="h").astype(str)
    result = _run(
        frame,
        "classification",
        "F1",
        {
            "feature_engineering_params": {"date_features": ["when"]},
            **_params(estimator_list=["dt"]),
        },
    )
    names = result.best.model.named_steps["preprocess"].get_feature_names_out()
    assert "when_hour" in list(names)


def test_tune_and_ensemble_add_candidates() -> None:
    frame = _classification(300)
    result = _run(
        frame,
        "classification",
        "AUC",
        _params(
            estimator_list=["lr", "dt", "nb"],
            n_select=2,
            tune=True,
            n_iter=3,
            ensemble=True,
            search_space={"dt": {"max_depth": [2, 3, 4]}},
        ),
    )
    kinds = {c.kind for c in result.candidates}
    assert {"base", "blend", "stack"} <= kinds
    blend = next(c for c in result.candidates if c.kind == "blend")
    assert len(blend.members) == 2
    assert result.best.mean_metrics["AUC"] == max(c.mean_metrics["AUC"] for c in result.candidates)
    proba = result.best.model.predict_proba(frame.drop(columns="target").head(4))
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)


def test_string_labels_come_back_as_labels_and_finalize_refits() -> None:
    frame = _classification(labels=("legit", "fraud"))
    result = _run(
        frame,
        "classification",
        "F1",
        {"finalize": True, **_params(estimator_list=["lr", "rf"], n_select=2, ensemble=True)},
    )
    predicted = result.best.model.predict(frame.drop(columns="target").head(10))
    assert set(predicted) <= {"legit", "fraud"}
    assert result.finalized
    assert list(result.best.model.classes_) == ["fraud", "legit"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_params(fold=1), "fold must be at least 2"),
        (_params(estimator_list=["rff"]), "(did you mean 'rf'?)"),
        (_params(estimator_list=["lasso"]), "not available for classification"),
    ],
)
def test_bad_parameters_fail_before_training(raw: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from loopml.core.validation import issues_from_validation_error

    with pytest.raises(ValidationError) as caught:
        TrainParams.model_validate(raw, context={"problem_type": "classification"})
    (issue,) = issues_from_validation_error(caught.value, TrainParams, "train_model")
    assert issue.path.startswith("train_model.modeling_params.")
    assert message in issue.render()


def test_data_problems_fail_before_training() -> None:
    params = TrainParams.model_validate(_params())
    one_class = _classification()
    one_class["target"] = 1
    with pytest.raises(DataError, match="single class"):
        run_automl(one_class, "target", "classification", "F1", params)
    rare = _classification()
    rare.loc[:, "target"] = 0
    rare.loc[0, "target"] = 1
    with pytest.raises(DataError, match="rarest class"):
        run_automl(rare, "target", "classification", "F1", params)
    missing = _classification()
    missing.loc[3, "target"] = np.nan
    with pytest.raises(DataError, match="missing values"):
        run_automl(missing, "target", "classification", "F1", params)


def test_metrics_match_scikit_learn() -> None:
    from sklearn import metrics

    y_true = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    proba = np.array(
        [
            [0.9, 0.1],
            [0.2, 0.8],
            [0.6, 0.4],
            [0.7, 0.3],
            [0.1, 0.9],
            [0.4, 0.6],
            [0.8, 0.2],
            [0.3, 0.7],
        ]
    )
    y_pred = proba.argmax(axis=1)
    scores = classification_scores(y_true, y_pred, proba, 2)
    assert scores["F1"] == pytest.approx(metrics.f1_score(y_true, y_pred))
    assert scores["AUC"] == pytest.approx(metrics.roc_auc_score(y_true, proba[:, 1]))
    assert scores["Kappa"] == pytest.approx(metrics.cohen_kappa_score(y_true, y_pred))
    values = regression_scores(np.array([3.0, 5.0, 2.0]), np.array([2.5, 5.0, 4.0]))
    assert values["RMSE"] == pytest.approx(np.sqrt((0.25 + 0 + 4) / 3))
    assert values["MAPE"] == pytest.approx((0.5 / 3 + 0 + 1.0) / 3)
