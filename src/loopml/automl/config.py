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
Space = dict[str, dict[str, list[Any] | Range]]
#: What each search library can do (PyCaret's tune_model).
SEARCH_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "optuna": ("tpe", "random", "grid"),
    "scikit-learn": ("random", "grid"),
}


class TuneParams(_Params):
    """PyCaret's ``tune_model`` options, plus where the trials run (``distributed``).

    ``search_space`` updates an estimator's default space, ``custom_grid``
    replaces it: only the parameters it names are searched. Each entry is a
    list of choices or a ``{low, high, log}`` range; a grid search cuts each
    range into :data:`GRID_POINTS` values.
    """

    n_iter: int = Field(10, ge=1, description="Trials per tuned model.")
    search_library: Literal["optuna", "scikit-learn"] = Field(
        "optuna", description="optuna (any algorithm, pruning) or scikit-learn (random, grid)."
    )
    search_algorithm: Literal["tpe", "random", "grid"] | None = Field(
        None, description="tpe, random or grid; default tpe for optuna, random for scikit-learn."
    )
    search_space: Space = Field(
        default_factory=dict, description="Per estimator id: ranges/choices updating its space."
    )
    custom_grid: Space = Field(
        default_factory=dict, description="Per estimator id: the whole space to search."
    )
    early_stopping: Literal["median", "successive_halving"] | None = Field(
        None,
        description="Prune a trial after a poor fold: median or successive_halving (true: median).",
    )
    optimize: str | None = Field(
        None, description="The metric trials maximise or minimise; default main_metric."
    )
    choose_better: bool = Field(
        True, description="Keep the untuned model unless the tuned one scores better."
    )
    distributed: bool = Field(
        False,
        description="Share one study among every training worker (PostgreSQL metadata store).",
    )

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _stopping_flag(cls, value: Any) -> Any:
        """PyCaret's ``early_stopping=True`` is its default pruner; ``False`` none."""
        if value is True:
            return "median"
        return None if value is False else value

    @field_validator("search_space", "custom_grid")
    @classmethod
    def _spaces(cls, value: Space, info: ValidationInfo) -> Space:
        for estimator_id, space in value.items():
            _check_id(estimator_id, _problem(info))
            if info.field_name == "custom_grid" and not space:
                raise ValueError(
                    f"custom_grid.{estimator_id} is empty: name at least one parameter, or leave "
                    "the estimator out to search its default space"
                )
            for name, entry in space.items():
                _check_range(f"{info.field_name}.{estimator_id}.{name}", entry)
        return value

    @field_validator("optimize")
    @classmethod
    def _metric(cls, value: str | None, info: ValidationInfo) -> str | None:
        from loopml.core.vocabulary import METRICS, canonical_metric

        if value is None:
            return None
        problem = _problem(info)
        allowed = METRICS[problem] if problem else tuple(m for ms in METRICS.values() for m in ms)
        metric = canonical_metric(value)
        if metric is None or metric not in allowed:
            raise choice_error(f"{problem or ''} metric".strip(), value, allowed)
        return metric

    @model_validator(mode="after")
    def _library_can_do_it(self) -> TuneParams:
        library, algorithm = self.search_library, self.search_algorithm
        if algorithm is not None and algorithm not in SEARCH_ALGORITHMS[library]:
            raise ValueError(
                f"search_algorithm {algorithm!r} is not available with search_library "
                f"{library!r}; choose {' or '.join(SEARCH_ALGORITHMS[library])}, or "
                "search_library 'optuna'"
            )
        both = sorted(set(self.search_space) & set(self.custom_grid))
        if both:
            raise ValueError(
                f"{', '.join(both)} in both search_space (updates the default space) and "
                "custom_grid (replaces it); keep one"
            )
        if library == "scikit-learn" and self.early_stopping:
            raise ValueError(
                "early_stopping prunes Optuna trials fold by fold; use search_library 'optuna' "
                "or remove early_stopping"
            )
        if library == "scikit-learn" and self.distributed:
            raise ValueError(
                "distributed trials share an Optuna study; use search_library 'optuna' or set "
                "distributed to false"
            )
        return self

    @property
    def algorithm(self) -> str:
        """The search algorithm, its default filled in."""
        if self.search_algorithm is not None:
            return self.search_algorithm
        return "tpe" if self.search_library == "optuna" else "random"

    @property
    def pruner(self) -> str | None:
        """``median``, ``successive_halving`` or ``None``."""
        return self.early_stopping


GRID_POINTS = 5


class ModelingParams(_Params):
    """Which models to compare and how (PyCaret's ``compare_models``, ``tune_model``...).

    Models are ranked by the experiment's ``main_metric``, passed to
    :func:`loopml.automl.run_automl` separately; tuning may optimize another
    metric (``tune.optimize``).
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
    tune: TuneParams | None = Field(
        None,
        description=(
            "Tune the n_select best: true (Optuna TPE, n_iter trials) or tune_model's options; "
            "false or null: no tuning."
        ),
    )
    n_iter: int = Field(10, ge=1, description="Optuna trials per tuned model.")
    search_space: dict[str, dict[str, list[Any] | Range]] = Field(
        default_factory=dict,
        description="Per estimator id: {param: [choices] or {low, high, log}}.",
    )
    ensemble: bool = Field(False, description="Blend and stack the n_select best.")
    train_size: float = Field(0.7, gt=0, lt=1, description="Share of rows for training.")
    session_id: int | None = Field(None, description="Seed for splits, models and tuning.")
    n_jobs: int | None = Field(None, ge=1, description="Parallel workers; default all cores.")

    @field_validator("tune", mode="before")
    @classmethod
    def _tune_flag(cls, value: Any) -> Any:
        """``true`` is a tune object with every default, ``false`` no tuning (PyCaret's flag)."""
        if value is True:
            return {}
        if value is False:
            return None
        if value is not None and not isinstance(value, dict | TuneParams):
            raise ValueError(
                f"tune is true, false or an object of tune_model's options (found {value!r})"
            )
        return value

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
                _check_range(f"search_space.{estimator_id}.{name}", entry)
        return value

    @model_validator(mode="after")
    def _one_home_for_tuning(self) -> ModelingParams:
        if self.tune is None:
            return self
        twice = sorted(
            {"n_iter", "search_space"} & self.model_fields_set & self.tune.model_fields_set
        )
        if twice:
            raise ValueError(
                f"{' and '.join(twice)} given both in modeling_params and in its tune object; "
                "say it once, inside tune"
            )
        return self

    @property
    def tuning(self) -> TuneParams | None:
        """The tuning options in one place, or ``None`` when nothing is tuned.

        ``tune: true`` with the top-level ``n_iter`` / ``search_space`` (loopml's
        first spelling) is the same as a ``tune`` object holding them.
        """
        if self.tune is None:
            return None
        updates: dict[str, Any] = {}
        if "n_iter" not in self.tune.model_fields_set:
            updates["n_iter"] = self.n_iter
        if "search_space" not in self.tune.model_fields_set:
            updates["search_space"] = self.search_space
        return self.tune.model_copy(update=updates) if updates else self.tune

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


def _check_range(where: str, entry: list[Any] | Range) -> None:
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
    if not isinstance(entry.get("log", False), bool):
        raise ValueError(f"{where}: log must be true or false (found {entry['log']!r})")
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
