"""PyCaret's estimator ids mapped to scikit-learn-compatible estimators.

Each factory takes the random seed and the number of threads the estimator
may use. Threads are always set explicitly: with folds running in parallel
one thread per model is fastest, and LightGBM left to its default spawns a
thread per core and slows every call down on a busy machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Factory = Callable[[int | None, int], Any]


@dataclass(frozen=True)
class Estimator:
    """One catalog entry: PyCaret's id and display name, and how to build it."""

    id: str
    name: str
    build: Factory
    probabilistic: bool = True

    @property
    def cost(self) -> int:
        """A rough relative fit cost, so the slowest fits start first and no core idles at
        the end of a comparison waiting on one long fit."""
        return _COSTS.get(self.id, 1)


def _lr_clf(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


def _knn_clf(seed: int | None, threads: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_jobs=threads)


def _nb(seed: int | None, threads: int) -> Any:
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB()


def _dt_clf(seed: int | None, threads: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(random_state=seed)


def _svm(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="hinge", random_state=seed, n_jobs=threads)


def _rbfsvm(seed: int | None, threads: int) -> Any:
    from loopml.automl.transformers import CalibratedSVC

    return CalibratedSVC(random_state=seed)


def _ridge_clf(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import RidgeClassifier

    return RidgeClassifier(random_state=seed)


def _rf_clf(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, n_jobs=threads)


def _qda(seed: int | None, threads: int) -> Any:
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    return QuadraticDiscriminantAnalysis(reg_param=0.01)


def _ada_clf(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import AdaBoostClassifier

    return AdaBoostClassifier(random_state=seed)


def _gbc(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(random_state=seed)


def _lda(seed: int | None, threads: int) -> Any:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return LinearDiscriminantAnalysis()


def _et_clf(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=seed, n_jobs=threads)


def _xgb_clf(seed: int | None, threads: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(random_state=seed, n_jobs=threads, tree_method="hist", verbosity=0)


_LGBM_REPEATABLE: dict[str, Any] = {"deterministic": True, "force_row_wise": True}
"""LightGBM's own switches for the same model from the same seed, data and thread count
(its histogram building otherwise varies with thread scheduling)."""


def _lgbm_clf(seed: int | None, threads: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(random_state=seed, n_jobs=threads, verbose=-1, **_LGBM_REPEATABLE)


def _dummy_clf(seed: int | None, threads: int) -> Any:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior")


def _lr_reg(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression(n_jobs=threads)


def _lasso(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import Lasso

    return Lasso(random_state=seed)


def _ridge_reg(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(random_state=seed)


def _en(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import ElasticNet

    return ElasticNet(random_state=seed)


def _lar(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import Lars

    return Lars(random_state=seed)


def _huber(seed: int | None, threads: int) -> Any:
    from sklearn.linear_model import HuberRegressor

    return HuberRegressor(max_iter=1000)


def _knn_reg(seed: int | None, threads: int) -> Any:
    from sklearn.neighbors import KNeighborsRegressor

    return KNeighborsRegressor(n_jobs=threads)


def _dt_reg(seed: int | None, threads: int) -> Any:
    from sklearn.tree import DecisionTreeRegressor

    return DecisionTreeRegressor(random_state=seed)


def _rf_reg(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(random_state=seed, n_jobs=threads)


def _et_reg(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(random_state=seed, n_jobs=threads)


def _ada_reg(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import AdaBoostRegressor

    return AdaBoostRegressor(random_state=seed)


def _gbr(seed: int | None, threads: int) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(random_state=seed)


def _xgb_reg(seed: int | None, threads: int) -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(random_state=seed, n_jobs=threads, tree_method="hist", verbosity=0)


def _lgbm_reg(seed: int | None, threads: int) -> Any:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(random_state=seed, n_jobs=threads, verbose=-1, **_LGBM_REPEATABLE)


def _dummy_reg(seed: int | None, threads: int) -> Any:
    from sklearn.dummy import DummyRegressor

    return DummyRegressor()


_CLASSIFICATION = (
    Estimator("lr", "Logistic Regression", _lr_clf),
    Estimator("knn", "K Neighbors Classifier", _knn_clf),
    Estimator("nb", "Naive Bayes", _nb),
    Estimator("dt", "Decision Tree Classifier", _dt_clf),
    Estimator("svm", "SVM - Linear Kernel", _svm, probabilistic=False),
    Estimator("rbfsvm", "SVM - Radial Kernel", _rbfsvm),
    Estimator("ridge", "Ridge Classifier", _ridge_clf, probabilistic=False),
    Estimator("rf", "Random Forest Classifier", _rf_clf),
    Estimator("qda", "Quadratic Discriminant Analysis", _qda),
    Estimator("ada", "Ada Boost Classifier", _ada_clf),
    Estimator("gbc", "Gradient Boosting Classifier", _gbc),
    Estimator("lda", "Linear Discriminant Analysis", _lda),
    Estimator("et", "Extra Trees Classifier", _et_clf),
    Estimator("xgboost", "Extreme Gradient Boosting", _xgb_clf),
    Estimator("lightgbm", "Light Gradient Boosting Machine", _lgbm_clf),
    Estimator("dummy", "Dummy Classifier", _dummy_clf),
)
_REGRESSION = (
    Estimator("lr", "Linear Regression", _lr_reg),
    Estimator("lasso", "Lasso Regression", _lasso),
    Estimator("ridge", "Ridge Regression", _ridge_reg),
    Estimator("en", "Elastic Net", _en),
    Estimator("lar", "Least Angle Regression", _lar),
    Estimator("huber", "Huber Regressor", _huber),
    Estimator("knn", "K Neighbors Regressor", _knn_reg),
    Estimator("dt", "Decision Tree Regressor", _dt_reg),
    Estimator("rf", "Random Forest Regressor", _rf_reg),
    Estimator("et", "Extra Trees Regressor", _et_reg),
    Estimator("ada", "AdaBoost Regressor", _ada_reg),
    Estimator("gbr", "Gradient Boosting Regressor", _gbr),
    Estimator("xgboost", "Extreme Gradient Boosting", _xgb_reg),
    Estimator("lightgbm", "Light Gradient Boosting Machine", _lgbm_reg),
    Estimator("dummy", "Dummy Regressor", _dummy_reg),
)

_COSTS = {"rbfsvm": 8, "rf": 6, "et": 5, "gbc": 5, "gbr": 5, "ada": 4, "xgboost": 3}
_COSTS.update({"lightgbm": 2, "knn": 2, "huber": 2})

CATALOG: dict[str, dict[str, Estimator]] = {
    "classification": {entry.id: entry for entry in _CLASSIFICATION},
    "regression": {entry.id: entry for entry in _REGRESSION},
}

# Without an estimator_list: strong and quick on tabular data, like PyCaret's turbo set.
DEFAULT_ESTIMATORS: dict[str, tuple[str, ...]] = {
    "classification": ("lr", "dt", "rf", "et", "lightgbm", "knn", "nb", "ridge", "lda", "dummy"),
    "regression": ("lr", "ridge", "lasso", "en", "dt", "rf", "et", "lightgbm", "knn", "dummy"),
}


def estimator(problem_type: str, estimator_id: str) -> Estimator:
    """The catalog entry for ``estimator_id`` of ``problem_type``."""
    return CATALOG[problem_type][estimator_id]


def set_threads(model: Any, threads: int) -> Any:
    """Set every thread knob ``model`` has (after unpickling or cloning) to ``threads``.

    Only knobs already set (ours always are) change: scikit-learn deprecates
    ``n_jobs`` on some estimators, which leave it ``None``.
    """
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    updates = {
        key: threads
        for key, value in params.items()
        if key.split("__")[-1] in ("n_jobs", "num_threads", "thread_count") and value is not None
    }
    if updates:
        model.set_params(**updates)
    return model
