"""The smoke profile: the same spec, steps and checks on the full data, set for speed.

A smoke run answers "does this pipeline still work end to end?" in minutes,
not "how good is the model?". It changes only how hard training works:

- ``fold`` 2 (cross-validation still runs, on two folds);
- no tuning (``tune`` off, so no Optuna trials);
- at most :data:`SMOKE_SELECT` models go on to the ensembles (blend and stack
  still run when the spec asks for them);
- every estimator with an ``n_estimators`` (forests, boosting, LightGBM,
  XGBoost) builds at most :data:`SMOKE_ESTIMATORS` trees.

Everything else (the data, the split, preprocessing, resampling, the
estimator list, every later step and check) is the spec's own.
"""

from __future__ import annotations

from typing import Any

from loopml.automl.config import TrainParams

SMOKE_FOLD = 2
SMOKE_SELECT = 2
SMOKE_ESTIMATORS = 10


def smoke_params(params: TrainParams) -> TrainParams:
    """``params`` with the smoke profile's folds, no tuning and small ensembles."""
    modeling = params.modeling_params
    fast = modeling.model_copy(
        update={
            "fold": SMOKE_FOLD,
            "tune": None,  # the validated form of `tune: false`
            "n_select": min(modeling.n_select, SMOKE_SELECT),
        }
    )
    return params.model_copy(update={"modeling_params": fast})


def smoke_overrides(problem_type: str, estimator_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per estimator id, the parameters that cap its tree count (empty when it has none)."""
    from loopml.automl.catalog import estimator

    overrides: dict[str, dict[str, Any]] = {}
    for estimator_id in estimator_ids:
        params = estimator(problem_type, estimator_id).build(0, 1).get_params()
        count = params.get("n_estimators", 0)
        if "n_estimators" in params and (count is None or count > SMOKE_ESTIMATORS):
            overrides[estimator_id] = {"n_estimators": SMOKE_ESTIMATORS}
    return overrides
