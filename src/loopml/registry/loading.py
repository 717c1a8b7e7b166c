"""Loading one registered version: trust checked, reference profile with it, threads pinned.

The one way serving, batch scoring and workers load a model. The version's
artifacts are downloaded to a private folder, hashed and judged
(:mod:`loopml.registry.trust`) before anything in them is unpickled, then
loaded from that same folder. A loopml model is one scikit-learn (or
imbalanced-learn) pipeline logged whole; it is unwrapped from the pyfunc so
scoring runs the preprocessing once and feeds both ``predict`` and
``predict_proba``. A model trained by an MLflow Project (any pyfunc flavour) is wrapped by
:mod:`loopml.registry.project_model` when it carries that module's contract file.
LightGBM/XGBoost ``n_jobs`` and BLAS are pinned to one thread: scoring batches are small and
processes, not threads, scale out.

A row's label is the model's own ``predict`` (:func:`score`), in serving and
in batch scoring alike: it is the decision rule the model was trained and
evaluated with (a tuned threshold included), which the argmax of
``predict_proba`` need not be.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.checker import ProfileChecker, checker_for
from loopml.core.errors import LoopmlError, ModelLoadError
from loopml.core.profile import PROFILE_FILE, ReferenceProfile
from loopml.core.settings import Settings
from loopml.registry.models import RegisteredVersion, get_version
from loopml.registry.project_model import ProjectClassifier, ProjectRegressor, read_contract, wrap
from loopml.registry.reference import ModelReference
from loopml.registry.tracking import use_tracking
from loopml.registry.trust import SHA256_TAG, TrustRecords, TrustVerdict, artifact_sha256, verify


@dataclass
class Scores:
    """What a model said for a frame: labels (or values) and, for classifiers, probabilities."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None = None


@dataclass
class LoadedVersion:
    """One registered version in memory, checked and ready to score. Never mutated."""

    name: str
    version: str
    pyfunc: Any
    pipeline: Any
    """The scikit-learn estimator inside the pyfunc; ``None`` for other flavours."""
    classes: list[Any] | None
    profile: ReferenceProfile | None
    checker: ProfileChecker | None
    trust: TrustVerdict
    run_id: str | None
    load_seconds: float

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def flavor(self) -> str:
        if self.pipeline is None or isinstance(self.pipeline, ProjectRegressor):
            return "python_function"
        return "sklearn"

    def score(self, frame: pd.DataFrame) -> Scores:
        return score(self.pipeline, self.pyfunc, self.classes, frame)


def load_version(
    settings: Settings,
    ref: ModelReference,
    *,
    records: TrustRecords,
    version: str | None = None,
) -> LoadedVersion:
    """Load ``ref`` (at ``version`` when given) if its artifacts are trusted.

    Raises :class:`ModelNotFoundError` for a missing model or version,
    :class:`UntrustedModelError` before unpickling anything untrusted and
    :class:`ModelLoadError` when trusted files cannot be loaded.
    """
    from loopml.registry.trust import downloaded

    started = time.perf_counter()
    version = version or ref.version or ref.resolve(settings)
    registered = get_version(settings, ref.name, version)  # ModelNotFoundError naming what exists
    uri = registered.uri
    try:
        with downloaded(settings, uri) as folder:
            verdict = judge(settings, registered, folder, records)
            pyfunc, pipeline = _load_pyfunc(settings, folder, uri)
            profile = _read_profile(folder, uri)
    except LoopmlError:
        raise
    except Exception as exc:  # anything else in MLflow's download is a load failure
        raise ModelLoadError(f"cannot load {uri} from {settings.tracking}: {exc}") from exc
    classes = None
    if pipeline is not None and hasattr(pipeline, "predict_proba"):
        found = getattr(pipeline, "classes_", None)
        classes = None if found is None else np.asarray(found).tolist()
    return LoadedVersion(
        name=ref.name,
        version=str(version),
        pyfunc=pyfunc,
        pipeline=pipeline,
        classes=classes,
        profile=profile,
        checker=None if profile is None else checker_for(profile),
        trust=verdict,
        run_id=pyfunc.metadata.run_id,
        load_seconds=time.perf_counter() - started,
    )


def check_version(
    settings: Settings,
    ref: ModelReference,
    *,
    records: TrustRecords,
    version: str | None = None,
) -> TrustVerdict:
    """Judge ``ref`` (at ``version``) as :func:`load_version` would, without loading it.

    For a parent process that forks servers: it refuses early, once, and
    unpickles nothing; each loading process still checks its own copy.
    """
    from loopml.registry.trust import downloaded

    version = version or ref.version or ref.resolve(settings)
    registered = get_version(settings, ref.name, version)  # ModelNotFoundError naming what exists
    with downloaded(settings, registered.uri) as folder:
        return judge(settings, registered, folder, records)


def judge(
    settings: Settings, registered: RegisteredVersion, folder: Path, records: TrustRecords
) -> TrustVerdict:
    """The trust verdict on ``registered`` whose downloaded files are in ``folder``."""
    return verify(
        settings,
        registered.name,
        registered.version,
        artifact_sha256(folder),
        records=records,
        mlflow_registrar=registrar(settings, registered),
        tagged_sha256=registered.tags.get(SHA256_TAG),
    )


def registrar(settings: Settings, registered: RegisteredVersion) -> str | None:
    """Who MLflow says registered the version: its ``user_id`` (an MLflow server with
    authentication sets it), else the user MLflow recorded for the run that logged the model.

    Both are only as trustworthy as the tracking server's authentication; see
    docs/security.md. ``None`` when MLflow knows neither.
    """
    if registered.user_id:
        return registered.user_id
    if not registered.run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        run = use_tracking(settings).MlflowClient().get_run(registered.run_id)
    except MlflowException:
        return None
    return str(run.info.user_id) if run.info.user_id else None


def _load_pyfunc(settings: Settings, folder: Any, uri: str) -> tuple[Any, Any]:
    mlflow = use_tracking(settings)
    try:
        pyfunc = mlflow.pyfunc.load_model(str(folder))
    except ModuleNotFoundError as exc:  # a flavour whose library is an extra (torch)
        hint = " (pip install 'loopml[torch]')" if exc.name == "torch" else ""
        raise ModelLoadError(
            f"cannot load {uri}: it needs the Python package {exc.name!r}, which is not "
            f"installed here{hint}"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot load {uri} from {settings.tracking}: {exc}") from exc
    pipeline = None
    if "sklearn" in pyfunc.metadata.flavors:
        try:
            pipeline = pyfunc.get_raw_model()
        except NotImplementedError:
            pipeline = None
    if pipeline is not None:
        single_threaded(pipeline)
    else:
        try:
            found = read_contract(Path(folder))
        except ValueError as exc:
            raise ModelLoadError(f"{uri}: its output contract cannot be read: {exc}") from exc
        if found is not None:
            pipeline = wrap(pyfunc, found)
    return pyfunc, pipeline


def _read_profile(folder: Any, uri: str) -> ReferenceProfile | None:
    """The version's reference profile (``validate_data``), part of the hashed artifacts.

    A version trained without one has none and is scored unchecked; one that
    exists but cannot be read fails the load rather than silently scoring
    without the checks it promised.
    """
    path = Path(folder) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        return ReferenceProfile.from_json(path.read_bytes())
    except Exception as exc:
        raise ModelLoadError(f"{uri}: its reference profile cannot be read: {exc}") from exc


def score(pipeline: Any, pyfunc: Any, classes: list[Any] | None, frame: pd.DataFrame) -> Scores:
    """Labels via the model's ``predict`` and, for classifiers, ``predict_proba``.

    The one definition of a label in loopml. The pipeline's preprocessing runs
    once and feeds both calls; models of other flavours go through the pyfunc.
    """
    if pipeline is None:
        return Scores(np.asarray(pyfunc.predict(frame)).reshape(len(frame), -1)[:, 0])
    if isinstance(pipeline, ProjectClassifier):
        return Scores(*pipeline.outputs(frame))
    features, final = _transform(pipeline, frame)
    if classes is not None:
        probabilities = np.asarray(final.predict_proba(features))
        return Scores(np.asarray(final.predict(features)), probabilities)
    return Scores(np.asarray(final.predict(features)))


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


def limit_threads() -> None:
    """One BLAS/OpenMP thread per process: scoring batches are small, cores are few."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


_THREAD_PARAMS = ("n_jobs", "num_threads", "nthread")


def single_threaded(estimator: Any, depth: int = 0) -> None:
    """Set every thread-count parameter (``n_jobs``, LightGBM's ``num_threads``…) inside to 1."""
    if depth > 8 or estimator is None:
        return
    if hasattr(estimator, "get_params") and hasattr(estimator, "set_params"):
        try:
            params = estimator.get_params(deep=False)
        except Exception:  # an estimator with a broken get_params still scores
            params = {}
        for name in _THREAD_PARAMS:
            if name in params and params[name] != 1:
                estimator.set_params(**{name: 1})
    for child in _children(estimator):
        single_threaded(child, depth + 1)


def _children(estimator: Any) -> list[Any]:
    """Estimators held by ``estimator``: pipeline steps, ensembles' members, wrapped ones."""
    found: list[Any] = []
    values = vars(estimator).values() if hasattr(estimator, "__dict__") else []
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            parts = item if isinstance(item, tuple) else (item,)
            found.extend(part for part in parts if hasattr(part, "get_params"))
    return found
