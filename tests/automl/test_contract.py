"""loopml's own estimators pass scikit-learn's conformance suite, so they compose and pickle."""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from loopml.automl.transformers import CalibratedSVC, RemoveMulticollinearity, TrigonometryFeatures


def _known(estimator: Any) -> dict[str, str]:
    if isinstance(estimator, CalibratedSVC):
        return {
            "check_fit2d_1feature": "five-fold calibration needs more rows than this check gives"
        }
    return {}


@parametrize_with_checks(
    [TrigonometryFeatures(), RemoveMulticollinearity(), CalibratedSVC(random_state=0)],
    expected_failed_checks=_known,
)
def test_scikit_learn_estimator_contract(estimator: Any, check: Any) -> None:
    check(estimator)
