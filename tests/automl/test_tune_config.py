"""Every bad tuning parameter is a spec error with its path, before any model is fitted."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from loopml.automl import TrainParams
from loopml.automl.config import TuneParams
from loopml.automl.run import check_request
from loopml.core.errors import SpecError
from loopml.core.validation import issues_from_validation_error
from tests.automl.frames import raw

PATH = "train_model.modeling_params.tune"


def _issues(tune: Any, problem: str | None = "classification", **modeling: Any) -> list[str]:
    context = {"problem_type": problem} if problem else None
    with pytest.raises(ValidationError) as caught:
        TrainParams.model_validate(raw(tune=tune, **modeling), context=context)
    return [
        f"{issue.path}: {issue.render()}"
        for issue in issues_from_validation_error(caught.value, TrainParams, "train_model")
    ]


@pytest.mark.parametrize(
    ("tune", "problem", "path", "expected"),
    [
        ({"n_iterr": 3}, None, f"{PATH}.n_iterr", "(did you mean 'n_iter'?)"),
        ({"n_iter": 0}, None, f"{PATH}.n_iter", "greater than or equal to 1"),
        ({"n_iter": "5"}, None, f"{PATH}.n_iter", "valid integer"),
        ({"search_library": "hyperopt"}, None, f"{PATH}.search_library", "'optuna'"),
        ({"search_algorithm": "bayes"}, None, f"{PATH}.search_algorithm", "'tpe'"),
        (
            {"search_library": "scikit-learn", "search_algorithm": "tpe"},
            None,
            PATH,
            "not available with search_library 'scikit-learn'; choose random or grid",
        ),
        (
            {"search_library": "scikit-learn", "early_stopping": "median"},
            None,
            PATH,
            "early_stopping prunes Optuna trials",
        ),
        (
            {"search_library": "scikit-learn", "distributed": True},
            None,
            PATH,
            "distributed trials share an Optuna study",
        ),
        ({"early_stopping": "asha"}, None, f"{PATH}.early_stopping", "median"),
        (
            {"optimize": "MAE"},
            "classification",
            f"{PATH}.optimize",
            "unknown classification metric",
        ),
        ({"optimize": "aucc"}, None, f"{PATH}.optimize", "(did you mean 'AUC'?)"),
        ({"choose_better": "yes"}, None, f"{PATH}.choose_better", "valid boolean"),
        ({"distributed": 1}, None, f"{PATH}.distributed", "valid boolean"),
        ({"search_space": {"rff": {}}}, None, f"{PATH}.search_space", "(did you mean 'rf'?)"),
        (
            {"search_space": {"lasso": {"alpha": [1]}}},
            "classification",
            f"{PATH}.search_space",
            "'lasso' is not available for classification",
        ),
        (
            {"search_space": {"rf": {"max_depth": []}}},
            None,
            f"{PATH}.search_space",
            "search_space.rf.max_depth: give at least one choice",
        ),
        (
            {"custom_grid": {"rf": {"max_depth": {"low": 9, "high": 2}}}},
            None,
            f"{PATH}.custom_grid",
            "custom_grid.rf.max_depth: low must be a number below high (found 9, 2)",
        ),
        (
            {"custom_grid": {"lr": {"C": {"low": 0, "high": 1, "log": True}}}},
            None,
            f"{PATH}.custom_grid",
            "custom_grid.lr.C: a log range needs low > 0",
        ),
        (
            {"custom_grid": {"lr": {"C": {"low": 0.1, "high": 1, "log": 1}}}},
            None,
            f"{PATH}.custom_grid",
            "log must be true or false",
        ),
        (
            {"custom_grid": {"lr": {"C": {"low": 0.1, "hi": 1}}}},
            None,
            f"{PATH}.custom_grid",
            "a range is {low, high, log}",
        ),
        ({"custom_grid": {"rf": {}}}, None, f"{PATH}.custom_grid", "custom_grid.rf is empty"),
        (
            {
                "custom_grid": {"rf": {"max_depth": [2]}},
                "search_space": {"rf": {"n_estimators": [9]}},
            },
            None,
            PATH,
            "rf in both search_space",
        ),
        (1, None, "train_model.modeling_params.tune", "tune is true, false or an object"),
        ("true", None, "train_model.modeling_params.tune", "tune is true, false or an object"),
    ],
)
def test_every_bad_tuning_parameter_names_its_path(
    tune: Any, problem: str | None, path: str, expected: str
) -> None:
    (issue,) = _issues(tune, problem)
    assert issue.startswith(f"{path}: "), issue
    assert expected in issue, issue


def test_a_parameter_given_at_both_levels_is_refused() -> None:
    (issue,) = _issues({"n_iter": 5}, None, n_iter=3)
    assert "n_iter given both in modeling_params and in its tune object" in issue


def test_a_parameter_the_estimator_does_not_take_is_refused_before_fitting() -> None:
    params = TrainParams.model_validate(
        raw(tune={"custom_grid": {"rf": {"max_dept": [2, 3]}}}),
        context={"problem_type": "classification"},
    )
    with pytest.raises(SpecError) as caught:
        check_request("classification", "AUC", params)
    (issue,) = caught.value.issues
    assert issue.path == f"{PATH}.custom_grid.rf.max_dept"
    assert issue.suggestion == "max_depth" and "not a parameter of rf" in issue.render()


def test_tune_true_and_the_first_spelling_mean_the_same_as_an_object() -> None:
    flag = TrainParams.model_validate(
        raw(tune=True, n_iter=4, search_space={"dt": {"max_depth": [2]}})
    )
    same = TrainParams.model_validate(
        raw(tune={"n_iter": 4, "search_space": {"dt": {"max_depth": [2]}}})
    )
    assert flag.modeling_params.tuning == same.modeling_params.tuning
    assert TrainParams.model_validate(raw(tune=False)).modeling_params.tuning is None
    defaults = TuneParams()
    assert (defaults.algorithm, defaults.pruner, defaults.choose_better) == ("tpe", None, True)
    assert TuneParams(search_library="scikit-learn").algorithm == "random"
    assert TuneParams(early_stopping=True).pruner == "median"
    # a re-validated dump (what check_request does) keeps which level said what
    again = TrainParams.model_validate(flag.model_dump(exclude_unset=True))
    assert again.modeling_params.tuning == flag.modeling_params.tuning
