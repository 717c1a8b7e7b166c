"""Model references (``name@alias``, ``name/version``) and a per-process cache of loaded models.

Workers score many batches with the same version; loading a model from the
registry takes far longer than scoring a batch, so each process keeps the
versions it loaded. A version is immutable in MLflow, so the cache never goes
stale; an alias is resolved to a version first, every time.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.checker import ProfileChecker, checker_for
from loopml.core.errors import ModelNotFoundError
from loopml.core.profile import ReferenceProfile
from loopml.core.settings import Settings
from loopml.registry.models import get_version, reference_profile, version_for_alias
from loopml.registry.tracking import use_tracking

_REF = re.compile(
    r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))$"
)
_CACHE_SIZE = 8


@dataclass(frozen=True)
class ModelRef:
    """Which model to score with: a registered name plus an alias or a version number."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        found = _REF.match(text.strip())
        if found is None:
            raise ModelNotFoundError(
                f"model reference {text!r} is not understood; write NAME@ALIAS "
                "(e.g. fraud@champion) or NAME/VERSION (e.g. fraud/3)"
            )
        return cls(found["name"], found["alias"], found["version"])

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    def resolve(self, settings: Settings) -> ModelRef:
        """The same model pinned to a version number (aliases move; a batch job must not)."""
        from mlflow.exceptions import MlflowException

        if self.version is not None:
            try:
                get_version(settings, self.name, self.version)
            except MlflowException as exc:
                raise ModelNotFoundError(
                    f"model {self}: no such registered version ({exc.message})"
                ) from exc
            return self
        assert self.alias is not None
        version = version_for_alias(settings, self.name, self.alias)
        if version is None:
            raise ModelNotFoundError(
                f"model {self}: alias {self.alias!r} is not set on registered model "
                f"{self.name!r} (or the model does not exist); check `mlflow` or train one first"
            )
        return ModelRef(self.name, None, version)


@dataclass
class LoadedModel:
    """A registered version ready to score: predictions and, for classifiers, probabilities."""

    name: str
    version: str
    model: Any
    profile: ReferenceProfile | None = None
    """The reference profile logged with the version (``validate_data``); batches are checked
    against it before scoring."""
    checker: ProfileChecker | None = None

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.model, "classes_", None)
        return None if classes is None else list(classes)

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The predicted labels (or values) and the class probabilities when there are any."""
        if hasattr(self.model, "predict_proba") and self.classes is not None:
            probabilities = np.asarray(self.model.predict_proba(frame))
            labels = np.asarray(self.classes)[probabilities.argmax(axis=1)]
            return labels, probabilities
        return np.asarray(self.model.predict(frame)), None


_cache: dict[tuple[str, str, str], LoadedModel] = {}
_lock = threading.Lock()


def load_model(settings: Settings, ref: ModelRef) -> LoadedModel:
    """The model ``ref`` (resolved to a version), from this process's cache when loaded before."""
    pinned = ref.resolve(settings) if ref.version is None else ref
    assert pinned.version is not None
    key = (settings.tracking, pinned.name, pinned.version)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    mlflow = use_tracking(settings)
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.sklearn.load_model(f"models:/{pinned.name}/{pinned.version}")
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {pinned}: cannot be loaded ({exc.message})") from exc
    single_threaded(model)
    profile = reference_profile(settings, pinned.name, pinned.version)
    checker = None if profile is None else checker_for(profile)
    loaded = LoadedModel(pinned.name, pinned.version, model, profile, checker)
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = loaded
    return loaded


def single_threaded(model: Any) -> None:
    """One thread per estimator: workers scale by processes, and LightGBM threads oversubscribe."""
    for estimator in _walk(model):
        params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
        for name in ("n_jobs", "num_threads", "nthread"):
            if name in params:
                estimator.set_params(**{name: 1})


def _walk(model: Any) -> list[Any]:
    found = [model]
    for step in getattr(model, "steps", []) or []:
        found += _walk(step[1])
    for attribute in ("estimator", "final_estimator", "base_estimator"):
        inner = getattr(model, attribute, None)
        if inner is not None and inner is not model:
            found += _walk(inner)
    for attribute in ("estimators_", "estimators"):
        inner = getattr(model, attribute, None)
        if isinstance(inner, list):
            for item in inner:
                found += _walk(item[1] if isinstance(item, tuple) else item)
    return found
