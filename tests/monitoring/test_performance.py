"""Performance from feedback labels, and the confidence-based estimate while labels are late."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from loopml.monitoring.performance import ConfusionTally, RegressionTally


def test_metrics_from_labels_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 5_000)
    predicted = np.where(rng.random(5_000) < 0.8, truth, 1 - truth)
    labels = pd.Series(truth.astype(object))
    labels[::7] = None  # feedback not back yet for these rows
    tally = ConfusionTally()
    for start in range(0, 5_000, 1_300):
        part = slice(start, start + 1_300)
        tally.update_labels(labels[part], pd.Series(predicted[part]))
    known = labels.notna().to_numpy()
    figures = tally.metrics()
    assert figures["rows"] == known.sum()
    assert figures["accuracy"] == pytest.approx(accuracy_score(truth[known], predicted[known]))
    assert figures["f1"] == pytest.approx(f1_score(truth[known], predicted[known]))


def test_regression_errors() -> None:
    tally = RegressionTally()
    tally.update(pd.Series([1.0, 2.0, None, 4.0]), pd.Series([1.5, 2.0, 9.0, 2.0]))
    figures = tally.metrics()
    assert figures["rows"] == 3
    assert figures["mae"] == pytest.approx((0.5 + 0 + 2) / 3)
    assert figures["rmse"] == pytest.approx(np.sqrt((0.25 + 4) / 3))


def test_confidence_based_estimate_is_close_to_real_accuracy_when_calibrated() -> None:
    rng = np.random.default_rng(1)
    rows = 20_000
    score = rng.normal(0, 1.2, rows)
    p = 1 / (1 + np.exp(-score))
    truth = (rng.random(rows) < p).astype(int)  # labels drawn from the model's own probabilities
    predicted = (p >= 0.5).astype(int)
    probabilities = pd.Series([{"0": 1 - q, "1": q} for q in p])
    estimate = ConfusionTally()
    estimate.update_expected(probabilities, pd.Series(predicted))
    expected = estimate.metrics()
    assert expected["accuracy"] == pytest.approx(np.mean(np.maximum(p, 1 - p)))
    assert expected["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=0.015)
    assert expected["f1"] == pytest.approx(f1_score(truth, predicted), abs=0.015)
    # an overconfident model (probabilities pushed to the extremes) is estimated too high
    sharp = pd.Series([{"0": 1 - q, "1": q} for q in np.clip(p * 3 - 1, 0.001, 0.999)])
    overconfident = ConfusionTally()
    overconfident.update_expected(sharp, pd.Series(predicted))
    assert overconfident.metrics()["accuracy"] > accuracy_score(truth, predicted) + 0.05
