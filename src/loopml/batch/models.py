"""Batch scoring's view of a registered version, and a per-process cache of loaded versions.

Resolving, trust checking, loading with the reference profile and pinning
threads is the registry's one loader (``loopml.registry.loading``, through
``loopml.lifecycle.load_trusted``); labels are defined there too, the same as
the server's. Workers score many batches with the same version and loading
takes far longer than scoring a batch, so each process keeps the versions it
loaded. A version is immutable in MLflow and its files were hashed when it
was loaded, so the cache never goes stale; an alias is resolved to a version
first, every time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.checker import ProfileChecker
from loopml.core.profile import ReferenceProfile
from loopml.core.settings import Settings
from loopml.registry.loading import LoadedVersion, single_threaded
from loopml.registry.reference import ModelReference

ModelRef = ModelReference
"""Batch scoring's name for :class:`loopml.registry.reference.ModelReference` (one grammar)."""

__all__ = ["LoadedModel", "ModelRef", "load_model", "single_threaded"]

_CACHE_SIZE = 8


@dataclass
class LoadedModel:
    """A registered version ready to score: predictions and, for classifiers, probabilities."""

    loaded: LoadedVersion

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def model(self) -> Any:
        return self.loaded.pipeline if self.loaded.pipeline is not None else self.loaded.pyfunc

    @property
    def profile(self) -> ReferenceProfile | None:
        """The reference profile logged with the version; batches are checked against it."""
        return self.loaded.profile

    @property
    def checker(self) -> ProfileChecker | None:
        return self.loaded.checker

    @property
    def classes(self) -> list[Any] | None:
        return self.loaded.classes

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The labels (the model's ``predict``, as served) and the class probabilities if any."""
        scores = self.loaded.score(frame)
        return scores.predictions, scores.probabilities


_cache: dict[tuple[str, str, str, str], LoadedModel] = {}
_lock = threading.Lock()


def load_model(settings: Settings, ref: ModelRef) -> LoadedModel:
    """The model ``ref`` (resolved to a version), from this process's cache when loaded before.

    Raises ``ModelNotFoundError`` for a missing model or version and
    ``UntrustedModelError`` for one whose artifacts are not trusted.
    """
    from loopml.lifecycle import load_trusted

    pinned = ref.pin(settings)
    assert pinned.version is not None
    key = (settings.tracking, settings.database, pinned.name, pinned.version)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    loaded = LoadedModel(load_trusted(settings, pinned))
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = loaded
    return loaded
