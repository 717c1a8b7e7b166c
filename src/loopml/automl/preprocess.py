"""From feature-engineering parameters and the data's columns to scikit-learn steps.

A loopml model is one imbalanced-learn pipeline in PyCaret's order:

``preprocess`` (dates, imputation, encoding, trigonometry, polynomials,
multicollinearity: raw frame in, numbers out) → ``remove_outliers`` and
``fix_imbalance`` (samplers, applied only while fitting) → ``transform``
(normalization, PCA, feature selection, learned on the resampled rows) →
``model``. :class:`Stages` holds the three unfitted parts so cross-validation
can fit each once per fold and share the result.
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


@dataclass
class Stages:
    """The unfitted parts of a model: before, during (fit only) and after resampling."""

    preprocess: Any
    samplers: list[tuple[str, Any]]
    transform: Any | None


def plan_columns(frame: pd.DataFrame, params: FeatureEngineeringParams) -> ColumnPlan:
    """Sort the feature columns by type, honouring the explicit lists in ``params``."""
    named = [*params.numeric_features, *params.categorical_features, *params.date_features]
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
        and (
            c in params.date_features
            or pd.api.types.is_datetime64_any_dtype(frame[c])
            or (c not in params.categorical_features and _holds_dates(frame[c], str(c)))
        )
    ]
    categorical, numeric = [], []
    for column in frame.columns:
        if column in ignored or column in dates:
            continue
        if column in params.categorical_features:
            categorical.append(column)
        elif column in params.numeric_features or pd.api.types.is_numeric_dtype(frame[column]):
            numeric.append(column)
        else:
            categorical.append(column)
    one_hot = [c for c in categorical if frame[c].nunique(dropna=True) <= params.max_encoding_ohe]
    ordinal = [c for c in categorical if c not in one_hot]
    if not numeric + categorical + dates:
        raise DataError("no feature columns are left after ignore_features; keep at least one")
    return ColumnPlan(numeric, categorical, dates, one_hot, ordinal)


_DATE_SHAPE = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"


def _holds_dates(values: pd.Series, name: str) -> bool:
    """Whether a text column (a CSV has no date type) holds dates, so they become date parts.

    ISO 8601 text is dates. Text that looks like dates in another format
    (``03/04/2024``: March or April?) is refused with what to do, never
    encoded as hundreds of categories.
    """
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    sample = values.dropna().astype(str).head(500)
    if sample.empty or not sample.str.match(_DATE_SHAPE).all():
        return False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iso = pd.to_datetime(sample, format="ISO8601", errors="coerce")
    if iso.notna().all():
        return True
    example = sample[iso.isna()].iloc[0]
    raise DataError(
        f"column {name!r} holds dates that are not ISO 8601 (e.g. {example!r}); write them as "
        f"YYYY-MM-DD [HH:MM:SS], or list the column in feature_engineering_params.date_features "
        f"(parsed as pandas reads them) or ignore_features"
    )


def build_stages(
    plan: ColumnPlan, params: FeatureEngineeringParams, problem_type: str, seed: int | None
) -> Stages:
    """The three unfitted parts for ``plan`` and ``params``."""
    return Stages(
        build_preprocessor(plan, params),
        build_samplers(params, problem_type, seed),
        build_transform(params, problem_type, seed),
    )


def build_preprocessor(plan: ColumnPlan, params: FeatureEngineeringParams) -> Any:
    """Raw columns to a float matrix: everything PyCaret does before resampling."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

    from loopml.automl.transformers import (
        DateFeatures,
        RemoveMulticollinearity,
        TrigonometryFeatures,
        as_float,
    )

    branches: list[tuple[str, Any, list[str]]] = []
    if plan.numeric:
        numeric_steps: list[tuple[str, Any]] = [
            ("as_float", FunctionTransformer(as_float, feature_names_out="one-to-one")),
            ("impute", _numeric_imputer(params)),
        ]
        if params.trigonometry_features:
            numeric_steps.append(("trigonometry", TrigonometryFeatures()))
        branches.append(("numeric", Pipeline(numeric_steps), plan.numeric))
    for name, columns, encoder in (
        ("one_hot", plan.one_hot, OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ("ordinal", plan.ordinal, _ordinal_encoder(OrdinalEncoder)),
    ):
        if columns:
            imputer = _categorical_imputer(params, SimpleImputer)
            branches.append((name, Pipeline([("impute", imputer), ("encode", encoder)]), columns))
    if plan.dates:
        dates = Pipeline([("parts", DateFeatures()), ("impute", SimpleImputer(strategy="median"))])
        branches.append(("dates", dates, plan.dates))
    columns = ColumnTransformer(
        branches, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
    )
    steps: list[tuple[str, Any]] = [("columns", columns)]
    if params.polynomial_features:
        from sklearn.preprocessing import PolynomialFeatures

        steps.append(
            ("polynomial", PolynomialFeatures(params.polynomial_degree, include_bias=False))
        )
    if params.remove_multicollinearity:
        steps.append(
            ("multicollinearity", RemoveMulticollinearity(params.multicollinearity_threshold))
        )
    return Pipeline(steps)


def build_samplers(
    params: FeatureEngineeringParams, problem_type: str, seed: int | None
) -> list[tuple[str, Any]]:
    """Fit-time-only row changes: outlier removal, then imbalance fixing (PyCaret's order)."""
    samplers: list[tuple[str, Any]] = []
    if params.remove_outliers:
        from imblearn import FunctionSampler

        from loopml.automl.transformers import drop_outliers

        options = {
            "method": params.outliers_method,
            "threshold": params.outliers_threshold,
            "seed": seed,
        }
        sampler = FunctionSampler(func=drop_outliers, validate=False, kw_args=options)
        samplers.append(("remove_outliers", sampler))
    if params.fix_imbalance:
        if problem_type != "classification":
            raise DataError("fix_imbalance resamples classes; it needs problem_type classification")
        samplers.append(("fix_imbalance", resampler(params.fix_imbalance_method, seed)))
    return samplers


# PyCaret's fix_imbalance_method ids and the imbalanced-learn classes behind them.
_RESAMPLER_CLASSES: dict[str, tuple[str, str]] = {
    "smote": ("over_sampling", "SMOTE"),
    "adasyn": ("over_sampling", "ADASYN"),
    "borderlinesmote": ("over_sampling", "BorderlineSMOTE"),
    "svmsmote": ("over_sampling", "SVMSMOTE"),
    "kmeanssmote": ("over_sampling", "KMeansSMOTE"),
    "randomoversampler": ("over_sampling", "RandomOverSampler"),
    "randomundersampler": ("under_sampling", "RandomUnderSampler"),
    "nearmiss": ("under_sampling", "NearMiss"),
    "tomeklinks": ("under_sampling", "TomekLinks"),
    "condensednearestneighbour": ("under_sampling", "CondensedNearestNeighbour"),
    "editednearestneighborus": ("under_sampling", "EditedNearestNeighbours"),
    "repeatededitednearestneighbours": ("under_sampling", "RepeatedEditedNearestNeighbours"),
    "allknn": ("under_sampling", "AllKNN"),
    "instancehardnessthreshold": ("under_sampling", "InstanceHardnessThreshold"),
    "neighbourhoodcleaningrule": ("under_sampling", "NeighbourhoodCleaningRule"),
    "onesidedselection": ("under_sampling", "OneSidedSelection"),
    "smotetomek": ("combine", "SMOTETomek"),
    "smoteenn": ("combine", "SMOTEENN"),
}


def resampler(method: str, seed: int | None) -> Any:
    """The imbalanced-learn sampler for PyCaret's ``fix_imbalance_method`` id, seeded if it can be.

    Samplers that search neighbours get one thread: folds already run in parallel.
    """
    import importlib
    import inspect

    module, name = _RESAMPLER_CLASSES[method]
    cls = getattr(importlib.import_module(f"imblearn.{module}"), name)
    accepted = inspect.signature(cls).parameters
    options = {
        key: value for key, value in (("random_state", seed), ("n_jobs", 1)) if key in accepted
    }
    return cls(**options)


def build_transform(
    params: FeatureEngineeringParams, problem_type: str, seed: int | None
) -> Any | None:
    """Normalization, PCA and feature selection, or ``None`` when none is asked for."""
    from sklearn.pipeline import Pipeline

    steps: list[tuple[str, Any]] = []
    if params.normalize:
        steps.append(("normalize", _scaler(params.normalize_method)))
    if params.pca:
        steps.append(("pca", _pca(params, seed)))
    if params.feature_selection:
        steps.append(("feature_selection", _selector(params, problem_type, seed)))
    return Pipeline(steps) if steps else None


def _numeric_imputer(params: FeatureEngineeringParams) -> Any:
    from sklearn.impute import SimpleImputer

    value = params.numeric_imputation
    if isinstance(value, int | float):
        return SimpleImputer(strategy="constant", fill_value=value)
    strategy = {"mean": "mean", "median": "median", "mode": "most_frequent"}[value]
    return SimpleImputer(strategy=strategy)


def _categorical_imputer(params: FeatureEngineeringParams, imputer: Any) -> Any:
    if params.categorical_imputation == "mode":
        return imputer(strategy="most_frequent")
    return imputer(strategy="constant", fill_value=params.categorical_imputation)


def _ordinal_encoder(encoder: Any) -> Any:
    return encoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64)


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
    count = components if isinstance(components, int) else None
    if params.pca_method == "kernel":
        return KernelPCA(n_components=count, kernel="rbf", random_state=seed)
    if params.pca_method == "incremental":
        return IncrementalPCA(n_components=count)
    return PCA(n_components=components, random_state=seed)


def _selector(params: FeatureEngineeringParams, problem_type: str, seed: int | None) -> Any:
    """PyCaret's selectors: ``classic`` (LightGBM importances), ``univariate``, ``sequential``."""
    share = params.n_features_to_select
    if params.feature_selection_method == "univariate":
        from sklearn.feature_selection import SelectKBest, SelectPercentile, f_classif, f_regression

        score = f_classif if problem_type == "classification" else f_regression
        if isinstance(share, int):
            return SelectKBest(score, k=share)
        return SelectPercentile(score, percentile=max(1.0, share * 100))
    from lightgbm import LGBMClassifier, LGBMRegressor

    model = (LGBMClassifier if problem_type == "classification" else LGBMRegressor)(
        random_state=seed, n_jobs=1, verbose=-1
    )
    if params.feature_selection_method == "sequential":
        from sklearn.feature_selection import SequentialFeatureSelector

        return SequentialFeatureSelector(model, n_features_to_select=share, cv=3)
    from sklearn.feature_selection import SelectFromModel

    return SelectFromModel(model, threshold=-np.inf, max_features=FeatureCount(share))


class FeatureCount:
    """``max_features`` as a callable: a count as is, or a share of the input columns."""

    def __init__(self, share: int | float) -> None:
        self.share = share

    def __call__(self, X: Any) -> int:
        if isinstance(self.share, int):
            return max(1, min(self.share, int(X.shape[1])))
        return max(1, round(self.share * int(X.shape[1])))
