"""The parameters of ``train_model``, with PyCaret 3's names, meanings and defaults.

Pure pydantic: this module is imported whenever a spec is validated, so it
must not import scikit-learn or anything heavy. Checks that depend on the
problem type read it from the validation context (``{"problem_type": ...}``),
which the engine passes from the experiment config, so a spec fails at
``loopml validate`` rather than minutes into training.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from loopml.core.validation import choice_error

CLASSIFIERS: tuple[str, ...] = (
    "lr",
    "knn",
    "nb",
    "dt",
    "svm",
    "rbfsvm",
    "ridge",
    "rf",
    "qda",
    "ada",
    "gbc",
    "lda",
    "et",
    "xgboost",
    "lightgbm",
    "dummy",
)
REGRESSORS: tuple[str, ...] = (
    "lr",
    "lasso",
    "ridge",
    "en",
    "lar",
    "huber",
    "knn",
    "dt",
    "rf",
    "et",
    "ada",
    "gbr",
    "xgboost",
    "lightgbm",
    "dummy",
)
ESTIMATORS: dict[str, tuple[str, ...]] = {"classification": CLASSIFIERS, "regression": REGRESSORS}
ALL_ESTIMATORS: tuple[str, ...] = tuple(dict.fromkeys(CLASSIFIERS + REGRESSORS))

# PyCaret's fix_imbalance_method ids (its spelling, "editednearestneighborus" included),
# without SMOTENC/SMOTEN, which need per-column categorical flags PyCaret infers itself.
RESAMPLERS: tuple[str, ...] = (
    "smote",
    "adasyn",
    "borderlinesmote",
    "svmsmote",
    "kmeanssmote",
    "randomoversampler",
    "randomundersampler",
    "nearmiss",
    "tomeklinks",
    "condensednearestneighbour",
    "editednearestneighborus",
    "repeatededitednearestneighbours",
    "allknn",
    "instancehardnessthreshold",
    "neighbourhoodcleaningrule",
    "onesidedselection",
    "smotetomek",
    "smoteenn",
)
NUMERIC_IMPUTATION: tuple[str, ...] = ("mean", "median", "mode")


def _problem(info: ValidationInfo) -> str | None:
    problem = (info.context or {}).get("problem_type")
    return problem if isinstance(problem, str) and problem in ESTIMATORS else None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FeatureEngineeringParams(_Params):
    """How raw columns become model inputs (PyCaret's ``setup`` options).

    The order is PyCaret's: dates, imputation, encoding, trigonometry,
    polynomials, multicollinearity; then, while fitting only, outlier removal
    and imbalance fixing; then normalization, PCA and feature selection, which
    therefore learn from the resampled rows as they do in PyCaret.
    """

    fix_imbalance: bool = Field(
        False, description="Resample the training rows to balance classes (only while fitting)."
    )
    fix_imbalance_method: str = Field("smote", description="PyCaret's resampler id.")
    pca: bool = Field(False, description="Project the features with PCA.")
    pca_method: Literal["linear", "kernel", "incremental"] = "linear"
    pca_components: int | float | None = Field(
        None, description="Components: a count, a share of variance (0-1), or all (None)."
    )
    normalize: bool = Field(False, description="Scale numeric features.")
    normalize_method: Literal["zscore", "minmax", "maxabs", "robust"] = "zscore"
    trigonometry_features: bool = Field(
        False, description="Add sin and cos of each numeric feature (PyCaret 2)."
    )
    polynomial_features: bool = False
    polynomial_degree: int = Field(2, ge=2, le=4)
    remove_outliers: bool = Field(False, description="Drop outlying training rows while fitting.")
    outliers_method: Literal["iforest", "ee", "lof"] = "iforest"
    outliers_threshold: float = Field(0.05, gt=0, lt=0.5, description="Share of rows dropped.")
    feature_selection: bool = False
    feature_selection_method: Literal["classic", "univariate", "sequential"] = "classic"
    n_features_to_select: int | float = Field(
        0.2, gt=0, description="A count, or a share of the features (0-1)."
    )
    remove_multicollinearity: bool = False
    multicollinearity_threshold: float = Field(0.9, gt=0, le=1)
    numeric_imputation: str | int | float = Field(
        "mean", description="mean, median, mode, or a number to fill in."
    )
    categorical_imputation: str = Field(
        "mode", description="mode, or a constant string to fill in."
    )
    max_encoding_ohe: int = Field(
        25, ge=0, description="One-hot encode up to this many categories; ordinal above."
    )
    ignore_features: list[str] = Field(default_factory=list)
    date_features: list[str] = Field(default_factory=list)
    numeric_features: list[str] = Field(default_factory=list)
    categorical_features: list[str] = Field(default_factory=list)

    @field_validator("fix_imbalance")
    @classmethod
    def _classification_only(cls, value: bool, info: ValidationInfo) -> bool:
        if value and _problem(info) == "regression":
            raise ValueError(
                "fix_imbalance resamples classes, so it needs problem_type classification; "
                "remove it for regression"
            )
        return value

    @field_validator("fix_imbalance_method")
    @classmethod
    def _known_resampler(cls, value: str) -> str:
        if value.lower() not in RESAMPLERS:
            raise choice_error("resampler", value, RESAMPLERS)
        return value.lower()

    @field_validator("numeric_imputation")
    @classmethod
    def _numeric_imputation(cls, value: str | int | float) -> str | int | float:
        if isinstance(value, str) and value not in NUMERIC_IMPUTATION:
            raise choice_error("numeric imputation", value, NUMERIC_IMPUTATION)
        return value

    @field_validator("pca_components")
    @classmethod
    def _components(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError("a float pca_components is a share of variance between 0 and 1")
        if isinstance(value, int) and value < 1:
            raise ValueError("pca_components must be at least 1")
        return value

    @field_validator("n_features_to_select")
    @classmethod
    def _selection(cls, value: int | float) -> int | float:
        if isinstance(value, float) and value >= 1:
            raise ValueError(
                "a float n_features_to_select is a share of the features below 1; give an "
                "integer for a count"
            )
        return value

    @model_validator(mode="after")
    def _disjoint_columns(self) -> FeatureEngineeringParams:
        lists = {
            "numeric_features": self.numeric_features,
            "categorical_features": self.categorical_features,
            "date_features": self.date_features,
            "ignore_features": self.ignore_features,
        }
        seen: dict[str, str] = {}
        for name, columns in lists.items():
            for column in columns:
                if column in seen:
                    raise ValueError(f"column {column!r} is in both {seen[column]} and {name}")
                seen[column] = name
        return self


Range = dict[str, float | int | bool]


class ModelingParams(_Params):
    """Which models to compare and how (PyCaret's ``compare_models``, ``tune_model``...).

    There is no ``optimize``: models are ranked by the experiment's
    ``main_metric``, passed to :func:`loopml.automl.run_automl` separately.
    """

    estimator_list: list[str] | None = Field(
        None, description="PyCaret estimator ids; default: a fast, strong set."
    )
    fold: int = Field(10, description="Cross-validation folds (at least 2).")
    fold_strategy: Literal["stratifiedkfold", "kfold"] | None = Field(
        None, description="Default: stratifiedkfold for classification, kfold for regression."
    )
    fold_shuffle: bool = Field(
        False, description="Shuffle before cutting folds (the split already shuffles)."
    )
    n_select: int = Field(1, ge=1, description="How many of the best go on to tune/ensemble.")
    tune: bool = Field(False, description="Tune the n_select best with Optuna's TPE.")
    n_iter: int = Field(10, ge=1, description="Optuna trials per tuned model.")
    search_space: dict[str, dict[str, list[Any] | Range]] = Field(
        default_factory=dict,
        description="Per estimator id: {param: [choices] or {low, high, log}}.",
    )
    ensemble: bool = Field(False, description="Blend and stack the n_select best.")
    train_size: float = Field(0.7, gt=0, lt=1, description="Share of rows for training.")
    session_id: int | None = Field(None, description="Seed for splits, models and tuning.")
    n_jobs: int | None = Field(None, ge=1, description="Parallel workers; default all cores.")

    @field_validator("fold")
    @classmethod
    def _fold(cls, value: int) -> int:
        if value < 2:
            raise ValueError(
                f"fold must be at least 2 for cross-validation (found {value}); PyCaret's "
                "default is 10"
            )
        return value

    @field_validator("fold_strategy")
    @classmethod
    def _strategy(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "stratifiedkfold" and _problem(info) == "regression":
            raise ValueError("stratifiedkfold needs classes; use kfold for regression")
        return value

    @field_validator("estimator_list")
    @classmethod
    def _estimators(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("estimator_list must name at least one estimator, or be left out")
        for item in value:
            _check_id(item, _problem(info))
        if len(set(value)) != len(value):
            raise ValueError("estimator_list names an estimator twice")
        return value

    @field_validator("search_space")
    @classmethod
    def _search_space(
        cls, value: dict[str, dict[str, list[Any] | Range]], info: ValidationInfo
    ) -> dict[str, dict[str, list[Any] | Range]]:
        for estimator_id, space in value.items():
            _check_id(estimator_id, _problem(info))
            for name, entry in space.items():
                _check_range(estimator_id, name, entry)
        return value

    @model_validator(mode="after")
    def _ensemble_members(self) -> ModelingParams:
        if not self.ensemble:
            return self
        if self.n_select < 2:
            raise ValueError(
                "ensemble blends and stacks the n_select best models; set n_select to at least 2"
            )
        if self.estimator_list is not None and len(self.estimator_list) < 2:
            raise ValueError("ensemble needs at least two estimators in estimator_list")
        return self


def _check_id(estimator_id: str, problem: str | None) -> None:
    allowed = ESTIMATORS[problem] if problem else ALL_ESTIMATORS
    if estimator_id in allowed:
        return
    if problem and estimator_id in ALL_ESTIMATORS:
        raise ValueError(
            f"estimator {estimator_id!r} is not available for {problem}; allowed: "
            f"{', '.join(allowed)}"
        )
    raise choice_error("estimator id", estimator_id, allowed)


def _check_range(estimator_id: str, name: str, entry: list[Any] | Range) -> None:
    where = f"search_space.{estimator_id}.{name}"
    if isinstance(entry, list):
        if not entry:
            raise ValueError(f"{where}: give at least one choice")
        return
    unknown = sorted(set(entry) - {"low", "high", "log"})
    if unknown or not {"low", "high"} <= set(entry):
        raise ValueError(f"{where}: a range is {{low, high, log}}; found keys {sorted(entry)}")
    low, high = entry["low"], entry["high"]
    if isinstance(low, bool) or isinstance(high, bool) or not low < high:
        raise ValueError(f"{where}: low must be a number below high (found {low}, {high})")
    if entry.get("log", False) and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0 (found {low})")


class TrainParams(_Params):
    """``train_model``: feature engineering, modeling, and whether to refit on all rows."""

    feature_engineering_params: FeatureEngineeringParams = Field(
        default_factory=FeatureEngineeringParams,
        description="PyCaret's setup() preprocessing; default: impute, encode, nothing else.",
    )
    modeling_params: ModelingParams = Field(
        default_factory=ModelingParams,
        description="Which estimators, folds, tuning and ensembling; default: compare all.",
    )
    finalize: bool = Field(
        False, description="Refit the chosen model on all rows (training and holdout)."
    )
