"""Parameter validation: PyCaret's defaults, and every mistake caught before training."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from loopml.automl import FeatureEngineeringParams, ModelingParams, TrainParams
from loopml.core.validation import issues_from_validation_error
from tests.automl.frames import raw


def _issue(params: dict[str, Any], problem: str | None = "classification") -> str:
    context = {"problem_type": problem} if problem else None
    with pytest.raises(ValidationError) as caught:
        TrainParams.model_validate(params, context=context)
    (issue,) = issues_from_validation_error(caught.value, TrainParams, "train_model")
    return f"{issue.path}: {issue.render()}"


def test_defaults_are_pycarets() -> None:
    features, modeling = FeatureEngineeringParams(), ModelingParams()
    assert (features.fix_imbalance, features.fix_imbalance_method) == (False, "smote")
    assert (features.pca_method, features.pca_components) == ("linear", None)
    assert (features.normalize_method, features.polynomial_degree) == ("zscore", 2)
    assert (features.outliers_threshold, features.multicollinearity_threshold) == (0.05, 0.9)
    assert (features.feature_selection_method, features.n_features_to_select) == ("classic", 0.2)
    assert (features.numeric_imputation, features.categorical_imputation) == ("mean", "mode")
    assert features.max_encoding_ohe == 25
    assert (modeling.fold, modeling.n_select, modeling.n_iter, modeling.train_size) == (
        10,
        1,
        10,
        0.7,
    )
    assert modeling.fold_shuffle is False and TrainParams().finalize is False


@pytest.mark.parametrize(
    ("params", "problem", "expected"),
    [
        (raw(fold=1), "classification", "fold must be at least 2 for cross-validation (found 1)"),
        (raw(estimator_list=["rff"]), "classification", "(did you mean 'rf'?)"),
        (raw(estimator_list=["lightgbn"]), None, "(did you mean 'lightgbm'?)"),
        (raw(estimator_list=["lasso"]), "classification", "not available for classification"),
        (raw(estimator_list=["gbc"]), "regression", "'gbc' is not available for regression"),
        (raw(estimator_list=["rf", "rf"]), "classification", "names an estimator twice"),
        (raw(search_space={"rf": {"max_depth": []}}), "classification", "at least one choice"),
        (
            raw(search_space={"rf": {"max_depth": {"low": 5, "high": 2}}}),
            "classification",
            "low must be a number below high",
        ),
        (
            raw(search_space={"lr": {"C": {"low": 0, "high": 1, "log": True}}}),
            "classification",
            "log range needs low > 0",
        ),
        (raw(search_space={"lasso": {}}), "classification", "not available for classification"),
        (raw(ensemble=True), "classification", "set n_select to at least 2"),
        (raw(fold_strategy="stratifiedkfold"), "regression", "use kfold for regression"),
        (
            raw({"fix_imbalance": True}),
            "regression",
            "feature_engineering_params.fix_imbalance: fix_imbalance resamples classes",
        ),
        (raw({"fix_imbalance_method": "smoot"}), None, "(did you mean 'smote'?)"),
        (raw({"numeric_imputation": "avg"}), None, "unknown numeric imputation"),
        (raw({"pca_components": 1.5}), None, "share of variance between 0 and 1"),
        (raw({"ignore_features": ["a"], "numeric_features": ["a"]}), None, "is in both"),
        (raw(fold="5"), None, "modeling_params.fold"),
        (raw(tune=1), None, "modeling_params.tune"),
    ],
)
def test_mistakes_are_reported_with_path_and_remedy(
    params: dict[str, Any], problem: str | None, expected: str
) -> None:
    assert expected in _issue(params, problem)


def test_estimator_id_errors_point_at_the_entry() -> None:
    text = _issue(raw(estimator_list=["lr", "rff"]))
    assert text.startswith("train_model.modeling_params.estimator_list: ")
    assert "allowed: lr, knn, nb" in text


def test_unknown_parameter_gets_a_suggestion() -> None:
    text = _issue({"modeling_params": {"n_selct": 2}})
    assert "unknown parameter" in text and "(did you mean 'n_select'?)" in text


def test_valid_search_space_is_kept() -> None:
    params = TrainParams.model_validate(
        raw(search_space={"rf": {"max_depth": [2, 4], "max_features": {"low": 0.3, "high": 0.9}}}),
        context={"problem_type": "classification"},
    )
    assert params.modeling_params.search_space["rf"]["max_depth"] == [2, 4]


def test_validating_a_spec_does_not_import_scikit_learn() -> None:
    code = (
        "import sys; import loopml.automl.config, loopml.automl; "
        "heavy = {'sklearn', 'lightgbm', 'xgboost', 'imblearn', 'optuna', 'matplotlib', 'numpy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
