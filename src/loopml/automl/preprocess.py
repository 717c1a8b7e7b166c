"""From feature-engineering parameters and the data's columns to scikit-learn steps.

Two parts come out: the *preprocessor* (imputation, encoding, date parts,
trigonometry, polynomials, multicollinearity, scaling, PCA, feature
selection), which runs at fit and predict time, and the *samplers* (outlier
removal, imbalance fixing), which imbalanced-learn applies only while fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.automl.config import FeatureEngineeringParams
from loopml.core.errors import DataError


@dataclass(frozen=True)
class ColumnPlan:
    """Which raw column goes through which branch."""

    numeric: list[str]
    categorical: list[str]
    dates: list[str]
    one_hot: list[str]
    ordinal: list[str]

    @property
    def used(self) -> list[str]:
        return self.numeric + self.categorical + self.dates


def plan_columns(frame: pd.DataFrame, params: FeatureEngineeringParams) -> ColumnPlan:
    """Sort the feature columns by type, honouring the explicit lists in ``params``."""
    named = [
        *params.numeric_features,
        *params.categorical_features,
        *params.date_features,
        *params.ignore_features,
    ]
    missing = [name for name in named if name not in frame.columns]
    if missing:
        raise DataError(
            f"feature_engineering_params name columns the data does not have: "
            f"{', '.join(missing)}; columns are {', '.join(map(str, frame.columns[:30]))}"
        )
    ignored = set(params.ignore_features)
    dates = [
        c
        for c in frame.columns
        if c not in ignored
        and (c in params.date_features or pd.api.types.is_datetime64_any_dtype(frame[c]))
    ]
    categorical, numeric = [], []
    for column in frame.columns:
        if column in ignored or column in dates:
            continue
        if column in params.categorical_features:
            categorical.append(column)
        elif column in params.numeric_features or (
            pd.api.types.is_numeric_dtype(frame[column])
            and not pd.api.types.is_bool_dtype(frame[column])
        ):
            numeric.append(column)
        else:
            categorical.append(column)
    one_hot = [c for c in categorical if frame[c].nunique(dropna=True) <= params.max_encoding_ohe]
    ordinal = [c for c in categorical if c not in one_hot]
    if not numeric + categorical + dates:
        raise DataError("no feature columns are left after ignore_features; keep at least one")
    return ColumnPlan(numeric, categorical, dates, one_hot, ordinal)


def build_preprocessor(
    plan: ColumnPlan, params: FeatureEngineeringParams, problem_type: str, seed: int | None
) -> Any:
    """The preprocessing pipeline for ``plan`` (unfitted, numpy out)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    from loopml.automl.transformers import DateFeatures, DropCorrelated, TrigonometryFeatures

    branches: list[tuple[str, Any, list[str]]] = []
    if plan.numeric:
        numeric_steps: list[tuple[str, Any]] = [("impute", _numeric_imputer(params))]
        if params.trigonometry_features:
            numeric_steps.append(("trigonometry", TrigonometryFeatures()))
        branches.append(("numeric", Pipeline(numeric_steps), plan.numeric))
    categorical_imputer = (
        SimpleImputer(strategy="most_frequent")
        if params.categorical_imputation == "mode"
        else SimpleImputer(strategy="constant", fill_value=params.categorical_imputation)
    )
    if plan.one_hot:
        branches.append(
            (
                "one_hot",
                Pipeline(
                    [
                        ("impute", categorical_imputer),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                plan.one_hot,
            )
        )
    if plan.ordinal:
        branches.append(
            (
                "ordinal",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        (
                            "encode",
                            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                        ),
                    ]
                ),
                plan.ordinal,
            )
        )
    if plan.dates:
        branches.append(
            (
                "dates",
                Pipeline([("parts", DateFeatures()), ("impute", SimpleImputer(strategy="median"))]),
                plan.dates,
            )
        )
    steps: list[tuple[str, Any]] = [
        (
            "columns",
            ColumnTransformer(
                branches, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
            ),
        ),
    ]
    if params.polynomial_features:
        from sklearn.preprocessing import PolynomialFeatures

        steps.append(
            ("polynomial", PolynomialFeatures(params.polynomial_degree, include_bias=False))
        )
    if params.remove_multicollinearity:
        steps.append(("multicollinearity", DropCorrelated(params.multicollinearity_threshold)))
    if params.normalize:
        steps.append(("normalize", _scaler(params.normalize_method)))
    if params.pca:
        steps.append(("pca", _pca(params, seed)))
    if params.feature_selection:
        steps.append(("feature_selection", _selector(params, problem_type, seed)))
    return Pipeline(steps)


def build_samplers(
    params: FeatureEngineeringParams, problem_type: str, seed: int | None
) -> list[tuple[str, Any]]:
    """Fit-time-only row changes: outlier removal, then imbalance fixing."""
    samplers: list[tuple[str, Any]] = []
    if params.remove_outliers:
        from imblearn import FunctionSampler

        from loopml.automl.transformers import drop_outliers

        samplers.append(
            (
                "remove_outliers",
                FunctionSampler(
                    func=drop_outliers,
                    validate=False,
                    kw_args={"threshold": params.outliers_threshold, "seed": seed},
                ),
            )
        )
    if params.fix_imbalance:
        if problem_type != "classification":
            raise DataError("fix_imbalance resamples classes; it needs problem_type classification")
        samplers.append(("fix_imbalance", resampler(params.fix_imbalance_method, seed)))
    return samplers


def resampler(method: str, seed: int | None) -> Any:
    """The imbalanced-learn sampler for PyCaret's ``fix_imbalance_method`` id."""
    from imblearn import combine, over_sampling, under_sampling

    factories: dict[str, Any] = {
        "smote": lambda: over_sampling.SMOTE(random_state=seed),
        "adasyn": lambda: over_sampling.ADASYN(random_state=seed),
        "borderlinesmote": lambda: over_sampling.BorderlineSMOTE(random_state=seed),
        "svmsmote": lambda: over_sampling.SVMSMOTE(random_state=seed),
        "kmeanssmote": lambda: over_sampling.KMeansSMOTE(random_state=seed),
        "randomoversampler": lambda: over_sampling.RandomOverSampler(random_state=seed),
        "randomundersampler": lambda: under_sampling.RandomUnderSampler(random_state=seed),
        "nearmiss": lambda: under_sampling.NearMiss(),
        "tomeklinks": lambda: under_sampling.TomekLinks(),
        "smotetomek": lambda: combine.SMOTETomek(random_state=seed),
        "smoteenn": lambda: combine.SMOTEENN(random_state=seed),
    }
    return factories[method]()


def _numeric_imputer(params: FeatureEngineeringParams) -> Any:
    from sklearn.impute import SimpleImputer

    value = params.numeric_imputation
    if isinstance(value, int | float):
        return SimpleImputer(strategy="constant", fill_value=value)
    strategy = {"mean": "mean", "median": "median", "mode": "most_frequent", "drop": "mean"}[value]
    return SimpleImputer(strategy=strategy)


def _scaler(method: str) -> Any:
    from sklearn import preprocessing

    return {
        "zscore": preprocessing.StandardScaler,
        "minmax": preprocessing.MinMaxScaler,
        "maxabs": preprocessing.MaxAbsScaler,
        "robust": preprocessing.RobustScaler,
    }[method]()


def _pca(params: FeatureEngineeringParams, seed: int | None) -> Any:
    from sklearn.decomposition import PCA, IncrementalPCA, KernelPCA

    components = params.pca_components
    if params.pca_method == "kernel":
        return KernelPCA(
            n_components=components if isinstance(components, int) else None,
            kernel="rbf",
            random_state=seed,
        )
    if params.pca_method == "incremental":
        return IncrementalPCA(n_components=components if isinstance(components, int) else None)
    return PCA(n_components=components, random_state=seed)


def _selector(params: FeatureEngineeringParams, problem_type: str, seed: int | None) -> Any:
    """PyCaret's ``classic`` (a LightGBM's importances) or ``univariate`` (F-test) selection."""
    share = params.n_features_to_select
    if params.feature_selection_method == "univariate":
        from sklearn.feature_selection import SelectKBest, SelectPercentile, f_classif, f_regression

        score = f_classif if problem_type == "classification" else f_regression
        if isinstance(share, int):
            return SelectKBest(score, k=share)
        return SelectPercentile(score, percentile=max(1.0, share * 100))
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.feature_selection import SelectFromModel

    model = (LGBMClassifier if problem_type == "classification" else LGBMRegressor)(
        n_estimators=50, random_state=seed, n_jobs=1, verbose=-1
    )
    return SelectFromModel(model, threshold=-np.inf, max_features=_FeatureCount(share))


class _FeatureCount:
    """``max_features`` as a callable: an int as is, a fraction of the input columns."""

    def __init__(self, share: int | float) -> None:
        self.share = share

    def __call__(self, X: Any) -> int:
        if isinstance(self.share, int):
            return max(1, min(self.share, int(X.shape[1])))
        return max(1, round(self.share * int(X.shape[1])))
