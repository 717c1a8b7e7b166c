"""The parameters of ``train_model``, with PyCaret 3's names, meanings and defaults.

Pure pydantic: this module is imported whenever a spec is validated, so it
must not import scikit-learn or anything heavy.
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
    "smotetomek",
    "smoteenn",
)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FeatureEngineeringParams(_Params):
    """How raw columns become model inputs (PyCaret's ``setup`` options)."""

    fix_imbalance: bool = Field(
        False, description="Resample the training folds (only while fitting)."
    )
    fix_imbalance_method: str = Field(
        "smote", description="imbalanced-learn resampler, PyCaret id."
    )
    pca: bool = Field(False, description="Project features with PCA after scaling.")
    pca_method: Literal["linear", "kernel", "incremental"] = "linear"
    pca_components: int | float | None = Field(
        None, description="Components: an int, a fraction of variance (0-1), or all (None)."
    )
    normalize: bool = False
    normalize_method: Literal["zscore", "minmax", "maxabs", "robust"] = "zscore"
    trigonometry_features: bool = Field(False, description="Add sin and cos of numeric columns.")
    polynomial_features: bool = False
    polynomial_degree: int = Field(2, ge=2, le=4)
    remove_outliers: bool = Field(False, description="Drop training rows IsolationForest flags.")
    outliers_threshold: float = Field(0.05, gt=0, lt=0.5)
    feature_selection: bool = False
    feature_selection_method: Literal["classic", "univariate"] = "classic"
    n_features_to_select: int | float = Field(0.2, gt=0)
    remove_multicollinearity: bool = False
    multicollinearity_threshold: float = Field(0.9, gt=0, le=1)
    numeric_imputation: str | int | float = Field(
        "mean", description="mean, median, mode or a number."
    )
    categorical_imputation: str = Field("mode", description="mode or a constant.")
    max_encoding_ohe: int = Field(25, ge=0, description="One-hot up to this many categories.")
    ignore_features: list[str] = Field(default_factory=list)
    date_features: list[str] = Field(default_factory=list)
    numeric_features: list[str] = Field(default_factory=list)
    categorical_features: list[str] = Field(default_factory=list)

    @field_validator("fix_imbalance_method")
    @classmethod
    def _known_resampler(cls, value: str) -> str:
        if value.lower() not in RESAMPLERS:
            raise choice_error("resampler", value, RESAMPLERS)
        return value.lower()

    @field_validator("numeric_imputation")
    @classmethod
    def _numeric_imputation(cls, value: str | int | float) -> str | int | float:
        if isinstance(value, str) and value not in ("mean", "median", "mode", "drop"):
            raise choice_error("numeric imputation", value, ("mean", "median", "mode", "drop"))
        return value

    @field_validator("pca_components")
    @classmethod
    def _components(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError("a float pca_components is a fraction of variance between 0 and 1")
        if isinstance(value, int) and value < 1:
            raise ValueError("pca_components must be at least 1")
        return value


class ModelingParams(_Params):
    """Which models to compare and how (PyCaret's ``compare_models`` and friends)."""

    estimator_list: list[str] | None = Field(
        None, description="PyCaret estimator ids; default: a fast, strong set."
    )
    fold: int = Field(10, description="Cross-validation folds (at least 2).")
    fold_strategy: Literal["stratifiedkfold", "kfold"] | None = Field(
        None, description="Default: stratified for classification, plain for regression."
    )
    n_select: int = Field(1, ge=1, description="How many of the best go on to tune/ensemble.")
    tune: bool = False
    n_iter: int = Field(10, ge=1, description="Optuna trials per tuned model.")
    search_space: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per estimator id: {param: [choices] or {low, high, log}}.",
    )
    ensemble: bool = Field(False, description="Blend and stack the n_select best.")
    train_size: float = Field(0.7, gt=0, lt=1, description="Share of rows for training.")
    session_id: int | None = Field(None, description="Seed for splits, models and tuning.")
    n_jobs: int | None = Field(None, description="Worker processes; default all cores.")

    @field_validator("fold")
    @classmethod
    def _fold(cls, value: int) -> int:
        if value < 2:
            raise ValueError(
                f"fold must be at least 2 for cross-validation (found {value}); PyCaret's "
                "default is 10"
            )
        return value

    @field_validator("estimator_list")
    @classmethod
    def _estimators(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("estimator_list must name at least one estimator, or be left out")
        problem = (info.context or {}).get("problem_type")
        allowed = ESTIMATORS.get(problem) if isinstance(problem, str) else None
        known = allowed or tuple(dict.fromkeys(CLASSIFIERS + REGRESSORS))
        for item in value:
            if item not in known:
                if allowed and item in CLASSIFIERS + REGRESSORS:
                    raise ValueError(
                        f"estimator {item!r} is not available for {problem}; allowed: "
                        f"{', '.join(allowed)}"
                    )
                raise choice_error("estimator id", item, known)
        if len(set(value)) != len(value):
            raise ValueError("estimator_list names an estimator twice")
        return value

    @model_validator(mode="after")
    def _search_space_ids(self) -> ModelingParams:
        known = set(CLASSIFIERS + REGRESSORS)
        for key in self.search_space:
            if key not in known:
                raise choice_error("estimator id in search_space", key, sorted(known))
        return self


class TrainParams(_Params):
    """``train_model``: feature engineering, modeling, and whether to refit on all data."""

    feature_engineering_params: FeatureEngineeringParams = Field(
        default_factory=FeatureEngineeringParams
    )
    modeling_params: ModelingParams = Field(default_factory=ModelingParams)
    finalize: bool = Field(False, description="Refit the chosen model on all rows.")
