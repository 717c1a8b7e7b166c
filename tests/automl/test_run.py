"""run_automl end to end: tune, ensembles, finalize, labels, pickling, progress, early errors."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest

from loopml.automl import TrainParams, run_automl
from loopml.core.errors import DataError, SpecError
from tests.automl.frames import classification, features, raw, regression, run


def test_tune_and_ensemble_add_candidates_scored_on_the_same_folds() -> None:
    frame = classification(300)
    result = run(
        frame,
        "classification",
        "AUC",
        raw(
            estimator_list=["lr", "dt", "nb"],
            n_select=2,
            tune=True,
            n_iter=4,
            ensemble=True,
            search_space={
                "dt": {"max_depth": [2, 3, 4], "min_samples_leaf": {"low": 2, "high": 9}}
            },
        ),
    )
    kinds = [c.kind for c in result.candidates]
    assert kinds.count("base") == 3 and {"blend", "stack"} <= set(kinds)
    blend = result.candidate("blend")
    assert len(blend.members) == 2 and blend.name.startswith("Voting Classifier (")
    members = [result.candidate(m) for m in blend.members]
    # The blend's out-of-fold output is the mean of its members', not a refit.
    assert np.allclose(blend.oof_scores, np.mean([m.oof_scores for m in members], axis=0))
    stack = result.candidate("stack")
    assert stack.params["meta_model"] == "LogisticRegression"
    for tuned in (c for c in result.candidates if c.kind == "tuned"):
        base = result.candidate(tuned.params["tuned_from"])
        assert tuned.mean_metrics["AUC"] > base.mean_metrics["AUC"]
    best = max(c.mean_metrics["AUC"] for c in result.candidates)
    assert result.best.mean_metrics["AUC"] == best
    assert result.leaderboard.iloc[0]["Model"] == result.best.name
    proba = result.best.model.predict_proba(features(frame).head(4))
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)


def test_tuning_keeps_the_untuned_model_when_no_trial_beats_it() -> None:
    frame = classification()
    result = run(
        frame,
        "classification",
        "F1",
        raw(estimator_list=["dt"], tune=True, n_iter=2, search_space={"dt": {"max_depth": [1]}}),
    )
    assert [c.kind for c in result.candidates] == ["base"]


def test_regression_ensembles_and_tuning() -> None:
    frame = regression()
    result = run(
        frame,
        "regression",
        "MAE",
        raw(estimator_list=["lr", "knn", "dt"], n_select=2, ensemble=True, tune=True, n_iter=2),
    )
    stack = result.candidate("stack")
    assert stack.params["meta_model"] == "LinearRegression"
    assert stack.mean_metrics["R2"] > 0.9
    assert result.leaderboard["MAE"].tolist() == sorted(result.leaderboard["MAE"])
    assert result.best.model.predict(features(frame).head(2)).shape == (2,)


def test_string_labels_come_back_as_labels_and_finalize_refits_on_all_rows() -> None:
    frame = classification(labels=("legit", "fraud"))
    result = run(
        frame,
        "classification",
        "F1",
        raw(estimator_list=["lr", "rf"], n_select=2, ensemble=True, finalize=True),
    )
    assert result.finalized and list(result.labels) == ["fraud", "legit"]
    assert set(result.holdout_labels()) == {"fraud", "legit"}
    model = pickle.loads(pickle.dumps(result.best.model))
    predicted = model.predict(features(frame))
    assert set(predicted) == {"legit", "fraud"}
    assert list(model.classes_) == ["fraud", "legit"]
    assert (predicted == frame["target"]).mean() > 0.85
    rows = model.named_steps["preprocess"].named_steps["columns"].n_features_in_
    assert rows == 7  # raw feature columns, target dropped
    # finalize refitted: the winner now trains on every row, the others on the split only.
    estimator = model.named_steps["model"].estimator_
    fitted = getattr(estimator, "estimators_", [estimator])
    assert all(getattr(m, "n_features_in_", 0) > 0 for m in fitted)


def test_predictions_survive_a_pickle_round_trip() -> None:
    frame = regression()
    result = run(frame, "regression", "R2", raw(estimator_list=["lightgbm", "xgboost", "et"]))
    rows = features(frame).sample(9, random_state=1)
    for candidate in result.candidates:
        loaded = pickle.loads(pickle.dumps(candidate.model))
        assert np.allclose(loaded.predict(rows), candidate.model.predict(rows)), candidate.id


def test_parallel_and_serial_runs_agree() -> None:
    frame = classification()
    params = raw(estimator_list=["lr", "rf", "knn"], fold=3)
    serial = run(frame, "classification", "MCC", params, n_jobs=1)
    parallel = run(frame, "classification", "MCC", params, n_jobs=2)
    for one, other in zip(serial.candidates, parallel.candidates, strict=True):
        assert one.fold_metrics == other.fold_metrics
        assert np.array_equal(one.holdout_scores, other.holdout_scores)


def test_progress_reports_each_estimator_and_fold() -> None:
    events: list[tuple[str, float, float | None]] = []
    run(
        classification(),
        "classification",
        "F1",
        raw(estimator_list=["lr", "dt"], fold=3, n_select=2, ensemble=True),
        progress=lambda *event: events.append(event),
    )
    by_bar: dict[str, list[float]] = {}
    for description, completed, total in events:
        by_bar.setdefault(description, []).append(completed)
        assert total is not None and 0 <= completed <= total
    assert by_bar["lr cross-validating Logistic Regression"] == [0, 1, 2, 3, 4]
    assert by_bar["dt cross-validating Decision Tree Classifier"] == [0, 1, 2, 3, 4]
    assert by_bar["preparing folds"][-1] == 4
    assert by_bar["ensembling blend and stack"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(target=1), "has a single class (1)"),
        (lambda f: f.assign(target=np.where(f.index == 0, 1, 0)), "class 1 of target column"),
        (lambda f: f.assign(target=np.where(f.index < 2, 1, 0)), "the rarest class (1) has 1"),
        (lambda f: f.assign(target=f["target"].where(f.index != 3)), "1 missing values"),
        (lambda f: f.assign(target=f["x0"]), "fractional numbers"),
        (lambda f: f.drop(columns="target"), "target column 'target' is not in the data"),
        (lambda f: f.head(5).assign(target=[0, 1, 0, 1, 0]), "3 training rows are too few"),
    ],
)
def test_data_problems_fail_before_training(change: object, message: str) -> None:
    params = TrainParams.model_validate(raw())
    frame = change(classification())  # type: ignore[operator]
    with pytest.raises(DataError, match=re.escape(message)):
        run_automl(frame, "target", "classification", "F1", params)


def test_smote_on_a_class_too_small_for_its_neighbours_says_what_to_do() -> None:
    frame = classification(200).assign(target=lambda f: np.where(f.index < 8, 1, 0))
    with pytest.raises(DataError, match="fix_imbalance failed on the training rows of fold"):
        run(frame, "classification", "F1", raw({"fix_imbalance": True}, estimator_list=["lr"]))


def test_parameters_are_checked_against_the_problem_type_before_training() -> None:
    params = TrainParams.model_validate(raw(estimator_list=["gbc"]))  # no context: allowed
    with pytest.raises(SpecError, match="'gbc' is not available for regression"):
        run_automl(regression(), "target", "regression", "R2", params)
    with pytest.raises(SpecError, match="not a regression metric"):
        run_automl(regression(), "target", "regression", "F1", TrainParams())


def test_regression_target_must_be_numeric() -> None:
    frame = regression().assign(target=lambda f: pd.Series(["a", "b"] * 100))
    with pytest.raises(DataError, match="not numeric"):
        run(frame, "regression", "R2", raw(estimator_list=["lr"]))


def test_an_estimator_that_fails_is_reported_and_the_others_go_on() -> None:
    # Four training rows per fold: too few for knn's five neighbours, plenty for lr.
    frame = regression().head(9)
    result = run(frame, "regression", "R2", raw(estimator_list=["knn", "lr"], fold=3))
    assert [c.id for c in result.candidates] == ["lr"]
    assert "n_neighbors" in result.failures["knn"] and "(on fold 0)" in result.failures["knn"]


def test_a_tuning_space_that_always_fails_keeps_the_untuned_model() -> None:
    result = run(
        classification(),
        "classification",
        "F1",
        raw(estimator_list=["dt"], tune=True, n_iter=2, search_space={"dt": {"max_depth": [-1]}}),
    )
    assert [c.kind for c in result.candidates] == ["base"]
    assert "every trial failed" in result.failures["dt_tuned"]
    assert "max_depth" in result.failures["dt_tuned"]
