"""Resolving what to serve in the registry, loading it once, and scoring rows fast.

A loopml model is one scikit-learn (or imbalanced-learn) pipeline logged
whole, so the server unwraps the pyfunc to that pipeline and calls it
directly: the preprocessing runs once per batch and feeds both ``predict``
and ``predict_proba``. Other flavours go through ``pyfunc.predict``.
LightGBM/XGBoost and BLAS are pinned to one thread: on one-row batches thread
start-up dominates and many threads oversubscribe a small machine.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.checker import ProfileChecker, checker_for
from loopml.core.errors import InputError, ModelLoadError
from loopml.core.profile import ReferenceProfile
from loopml.core.settings import Settings
from loopml.registry.models import reference_profile, version_for_alias
from loopml.registry.tracking import use_tracking
from loopml.serving.table import InputSchema

log = logging.getLogger(__name__)

_URI = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?$")


@dataclass(frozen=True)
class ModelRef:
    """What the server was asked to serve: ``NAME@alias``, ``NAME/version`` or ``models:/...``."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = _URI.match(text.strip())
        if not match:
            raise ModelLoadError(
                f"--model {text!r}: expected NAME@alias, NAME/version, models:/NAME@alias "
                "or models:/NAME/version (for example fraud@champion)"
            )
        alias, version = match["alias"], match["version"]
        if alias is None and version is None:
            alias = "champion"
        if version is not None and version.lower() == "latest":
            raise ModelLoadError(
                f"--model {text!r}: 'latest' does not move with promotions; "
                f"serve {match['name']}@champion instead"
            )
        return cls(match["name"], alias, version)

    @property
    def watches(self) -> bool:
        """An alias can move, so the server watches it; a fixed version cannot."""
        return self.alias is not None

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    def resolve(self, settings: Settings) -> str:
        """The version this reference points at right now."""
        if self.version is not None:
            return self.version
        assert self.alias is not None
        try:
            found = version_for_alias(settings, self.name, self.alias)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot read {self} from the registry at {settings.tracking}: {exc}"
            ) from exc
        if found is None:
            raise ModelLoadError(
                f"{self}: no version of {self.name!r} has the alias {self.alias!r} in the "
                f"registry at {settings.tracking}; register one or set the alias"
            )
        return found


@dataclass
class Scores:
    """What the model said for a batch: predictions and, for classifiers, probabilities."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None = None


@dataclass
class ServedModel:
    """One loaded version, ready to score; replaced whole on a hot swap, never mutated."""

    name: str
    version: str
    alias: str | None
    schema: InputSchema
    flavor: str
    pyfunc: Any
    pipeline: Any = None
    classes: list[Any] | None = None
    run_id: str | None = None
    output_schema: list[dict[str, Any]] = field(default_factory=list)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_seconds: float = 0.0
    profile: ReferenceProfile | None = None
    """The reference profile logged with this version (``validate_data``), if any."""
    checker: ProfileChecker | None = None
    """``profile`` compiled once for per-request checks; None without a profile."""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def class_keys(self) -> list[str]:
        return [str(c) for c in self.classes or []]

    def score(self, frame: pd.DataFrame) -> Scores:
        """Predictions for ``frame``; bad values the signature let through raise InputError."""
        try:
            if self.pipeline is None:
                return Scores(np.asarray(self.pyfunc.predict(frame)).reshape(len(frame), -1)[:, 0])
            features, final = _transform(self.pipeline, frame)
            if self.classes is not None:
                probabilities = np.asarray(final.predict_proba(features))
                return Scores(np.asarray(final.predict(features)), probabilities)
            return Scores(np.asarray(final.predict(features)))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # Values of the right type that the model still cannot take (e.g. NaN
            # without an imputer, infinities): the request's fault, not the server's.
            raise InputError("inputs", f"the model could not score these rows: {exc}") from exc

    def warm_up(self) -> None:
        """Score one row so the first real request pays no lazy initialisation."""
        self.score(self.schema.example_table().to_frame())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": self.uri,
            "run_id": self.run_id,
            "flavor": self.flavor,
            "loaded_at": self.loaded_at.isoformat(),
            "load_seconds": round(self.load_seconds, 3),
            "classes": self.classes,
            "reference_profile": None
            if self.profile is None
            else {"columns": len(self.profile.columns), "rows": self.profile.rows},
        }


def _transform(pipeline: Any, frame: pd.DataFrame) -> tuple[Any, Any]:
    """Run every step but the last (skipping samplers, as the pipeline does at predict)."""
    steps = getattr(pipeline, "steps", None)
    if not steps:
        return frame, pipeline
    features: Any = frame
    for _, step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        if hasattr(step, "fit_resample") and not hasattr(step, "transform"):
            continue
        features = step.transform(features)
    return features, steps[-1][1]


def load_model(settings: Settings, ref: ModelRef, version: str | None = None) -> ServedModel:
    """Load ``ref`` (at ``version`` when given), unwrap it and warm it up."""
    import time

    started = time.perf_counter()
    version = version or ref.resolve(settings)
    uri = f"models:/{ref.name}/{version}"
    mlflow = use_tracking(settings)
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {uri} from {settings.tracking}: {exc}") from exc
    try:
        schema = InputSchema.from_mlflow(pyfunc.metadata.get_input_schema())
    except InputError as exc:
        raise ModelLoadError(f"{uri}: {exc.detail}; expected {exc.expected}") from exc
    flavors = pyfunc.metadata.flavors
    pipeline = None
    classes = None
    flavor = "python_function"
    if "sklearn" in flavors:
        try:
            pipeline = pyfunc.get_raw_model()
        except NotImplementedError:
            pipeline = None
        if pipeline is not None:
            flavor = "sklearn"
            _single_threaded(pipeline)
            if hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_"):
                classes = np.asarray(pipeline.classes_).tolist()
    output = pyfunc.metadata.get_output_schema()
    profile = _load_profile(settings, ref.name, str(version))
    served = ServedModel(
        name=ref.name,
        version=str(version),
        alias=ref.alias,
        schema=schema,
        flavor=flavor,
        pyfunc=pyfunc,
        pipeline=pipeline,
        classes=classes,
        run_id=pyfunc.metadata.run_id,
        output_schema=output.to_dict() if output is not None else [],
        profile=profile,
        checker=None if profile is None else checker_for(profile),
    )
    try:
        served.warm_up()
    except InputError as exc:
        log.warning("warm-up of %s on a synthetic row failed (%s); serving anyway", uri, exc)
    served.load_seconds = time.perf_counter() - started
    served.loaded_at = datetime.now(UTC)
    return served


def _load_profile(settings: Settings, name: str, version: str) -> ReferenceProfile | None:
    """The version's reference profile, loaded with it so a hot swap brings its own.

    A version trained without ``validate_data`` has none and is served unchecked;
    a profile that exists but cannot be read fails the load (the old version
    keeps serving) rather than silently serving without the checks it promised.
    """
    try:
        return reference_profile(settings, name, version)
    except Exception as exc:
        raise ModelLoadError(
            f"models:/{name}/{version}: its reference profile cannot be read: {exc}"
        ) from exc


def limit_threads() -> None:
    """One BLAS/OpenMP thread per process: predict batches are small, cores are few."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _single_threaded(estimator: Any, depth: int = 0) -> None:
    """Set ``n_jobs=1`` on every LightGBM/XGBoost/joblib-parallel estimator inside."""
    if depth > 8 or estimator is None:
        return
    if hasattr(estimator, "get_params") and hasattr(estimator, "set_params"):
        module = type(estimator).__module__
        try:
            params = estimator.get_params(deep=False)
        except Exception:  # an estimator with a broken get_params still serves
            params = {}
        if "n_jobs" in params and params["n_jobs"] != 1:
            estimator.set_params(n_jobs=1)
        if module.startswith("lightgbm") and "num_threads" in params:
            estimator.set_params(num_threads=1)
    children: list[Any] = []
    for value in vars(estimator).values() if hasattr(estimator, "__dict__") else []:
        if isinstance(value, list | tuple):
            children.extend(value)
        elif hasattr(value, "get_params"):
            children.append(value)
    for child in children:
        if isinstance(child, tuple):
            for part in child:
                if hasattr(part, "get_params"):
                    _single_threaded(part, depth + 1)
        elif hasattr(child, "get_params"):
            _single_threaded(child, depth + 1)
