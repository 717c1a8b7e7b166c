"""Metrics as PyCaret 3.3 computes them, checked against scikit-learn on known arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from loopml.automl.metrics import classification_scores, regression_scores


def test_binary_metrics_use_the_second_label_as_positive() -> None:
    y_true = np.array([0, 1, 1, 0, 1, 0, 0, 1, 0, 0])
    proba1 = np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.6, 0.2, 0.7, 0.45, 0.05])
    proba = np.column_stack([1 - proba1, proba1])
    y_pred = (proba1 > 0.5).astype(int)
    scores = classification_scores(y_true, y_pred, proba, 2)
    assert scores == pytest.approx(
        {
            "Accuracy": 0.8,
            "AUC": metrics.roc_auc_score(y_true, proba1),
            "Recall": 0.75,
            "Prec.": 0.75,
            "F1": 0.75,
            "Kappa": metrics.cohen_kappa_score(y_true, y_pred),
            "MCC": metrics.matthews_corrcoef(y_true, y_pred),
        }
    )
    assert scores["AUC"] == pytest.approx(22 / 24)


def test_multiclass_metrics_are_weighted_and_auc_is_one_vs_rest() -> None:
    rng = np.random.default_rng(0)
    y_true = np.repeat([0, 1, 2], [5, 3, 4])
    proba = rng.dirichlet([1, 1, 1], size=12)
    y_pred = proba.argmax(axis=1)
    scores = classification_scores(y_true, y_pred, proba, 3)
    assert scores["F1"] == pytest.approx(metrics.f1_score(y_true, y_pred, average="weighted"))
    assert scores["Recall"] == pytest.approx(
        metrics.recall_score(y_true, y_pred, average="weighted")
    )
    assert scores["AUC"] == pytest.approx(
        metrics.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted")
    )


def test_auc_is_zero_when_a_fold_holds_one_class() -> None:
    scores = classification_scores(np.zeros(4, int), np.zeros(4, int), np.full((4, 2), 0.5), 2)
    assert scores["AUC"] == 0.0 and scores["Accuracy"] == 1.0


def test_regression_metrics_match_pycaret_definitions() -> None:
    y_true = np.array([3.0, 5.0, 2.0, 0.0, -1.0])
    y_pred = np.array([2.5, 5.0, 4.0, 1.0, -2.0])
    scores = regression_scores(y_true, y_pred)
    mse = metrics.mean_squared_error(y_true, y_pred)
    assert scores["MSE"] == pytest.approx(mse)
    assert scores["RMSE"] == pytest.approx(np.sqrt(mse))
    assert scores["MAE"] == pytest.approx(metrics.mean_absolute_error(y_true, y_pred))
    assert scores["R2"] == pytest.approx(metrics.r2_score(y_true, y_pred))
    # PyCaret: RMSLE on absolute values; MAPE skips rows whose true value is zero.
    rmsle = np.sqrt(metrics.mean_squared_log_error(np.abs(y_true), np.abs(y_pred)))
    assert scores["RMSLE"] == pytest.approx(rmsle)
    assert scores["MAPE"] == pytest.approx((0.5 / 3 + 0 + 2 / 2 + 1 / 1) / 4)
