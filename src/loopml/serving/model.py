"""The served model: one trusted registered version with its signature, scored fast.

Resolving the reference, checking trust, loading the version with its
reference profile and pinning threads is ``loopml.registry.loading``'s one
loader (through ``loopml.lifecycle.load_trusted``, which brings the metadata
store's trust records); this module adds what only the server needs: the
input schema from the MLflow signature, a warm-up, and input errors as 4xx.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from loopml.core.checker import ProfileChecker
from loopml.core.errors import InputError, ModelLoadError
from loopml.core.profile import ReferenceProfile
from loopml.core.settings import Settings
from loopml.registry.loading import Scores, limit_threads, score
from loopml.registry.reference import ModelReference
from loopml.serving.table import InputSchema

log = logging.getLogger(__name__)

ModelRef = ModelReference
"""The server's name for :class:`loopml.registry.reference.ModelReference` (one grammar)."""

__all__ = ["ModelRef", "Scorer", "Scores", "ServedModel", "limit_threads", "load_model"]


class Scorer(Protocol):
    """The seam between the server and what computes its answers (a runtime other than the
    pipeline itself, e.g. :class:`loopml.export.runtime.OnnxScorer`)."""

    runtime: str

    def score(self, frame: pd.DataFrame) -> Scores: ...


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
    trust: str | None = None
    """Why this version was trusted (registered through loopml, approved, trusted registrar)."""
    sha256: str | None = None
    scorer: Scorer | None = None
    """What scores instead of the pipeline (``--runtime onnx``); ``None``: the pipeline."""
    runtime_detail: dict[str, Any] | None = None
    """What ``/metadata`` says about the runtime (the ONNX file's hash, parity figure)."""
    features: Any = None
    """``serving.features.OnlineFeatures`` when the version was trained from a feature store;
    ``schema`` is then the request's (entity keys), ``features.model_schema`` the model's."""

    @property
    def runtime(self) -> str:
        return "pyfunc" if self.scorer is None else self.scorer.runtime

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def class_keys(self) -> list[str]:
        return [str(c) for c in self.classes or []]

    def score(self, frame: pd.DataFrame) -> Scores:
        """Predictions for ``frame``; bad values the signature let through raise InputError."""
        try:
            if self.scorer is not None:
                return self.scorer.score(frame)
            return score(self.pipeline, self.pyfunc, self.classes, frame)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # Values of the right type that the model still cannot take (e.g. NaN
            # without an imputer, infinities): the request's fault, not the server's.
            raise InputError("inputs", f"the model could not score these rows: {exc}") from exc

    def warm_up(self) -> None:
        """Score one row so the first real request pays no lazy initialisation."""
        schema = self.schema if self.features is None else self.features.model_schema
        self.score(schema.example_table().to_frame())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": self.uri,
            "run_id": self.run_id,
            "flavor": self.flavor,
            "runtime": self.runtime,
            "runtime_detail": self.runtime_detail,
            "loaded_at": self.loaded_at.isoformat(),
            "load_seconds": round(self.load_seconds, 3),
            "classes": self.classes,
            "artifact_sha256": self.sha256,
            "trust": self.trust,
            "features": None if self.features is None else self.features.describe(),
            "reference_profile": None
            if self.profile is None
            else {"columns": len(self.profile.columns), "rows": self.profile.rows},
        }


def load_model(settings: Settings, ref: ModelRef, version: str | None = None) -> ServedModel:
    """Load ``ref`` (at ``version`` when given) if trusted, read its signature and warm it up."""
    import time

    from loopml.lifecycle import load_trusted

    started = time.perf_counter()
    loaded = load_trusted(settings, ref, version)
    metadata = loaded.pyfunc.metadata
    try:
        schema = InputSchema.from_mlflow(metadata.get_input_schema())
    except InputError as exc:
        raise ModelLoadError(f"{loaded.uri}: {exc.detail}; expected {exc.expected}") from exc
    output = metadata.get_output_schema()
    served = ServedModel(
        name=loaded.name,
        version=loaded.version,
        alias=ref.alias,
        schema=schema,
        flavor=loaded.flavor,
        pyfunc=loaded.pyfunc,
        pipeline=loaded.pipeline,
        classes=loaded.classes,
        run_id=loaded.run_id,
        output_schema=output.to_dict() if output is not None else [],
        profile=loaded.profile,
        checker=loaded.checker,
        trust=loaded.trust.basis,
        sha256=loaded.trust.sha256,
    )
    from loopml.serving.features import attach

    attach(settings, served)  # a version trained from a feature store joins online features
    if settings.serve_runtime == "onnx":
        served.scorer, served.runtime_detail = onnx_runtime(settings, loaded)
    try:
        served.warm_up()
    except InputError as exc:
        log.warning("warm-up of %s on a synthetic row failed (%s); serving anyway", loaded.uri, exc)
    served.load_seconds = time.perf_counter() - started
    served.loaded_at = datetime.now(UTC)
    return served


def onnx_runtime(settings: Settings, loaded: Any) -> tuple[Scorer, dict[str, Any]]:
    """The version's ONNX export, parity-checked against ``loaded`` (exported now if it has
    none); :class:`~loopml.export.errors.ExportError` keeps a hot swap from serving it."""
    from loopml.export.version import served_export

    export = served_export(settings, loaded)
    detail = {
        "onnx_sha256": export.sha256,
        "artifact_uri": export.artifact_uri,
        "size_bytes": export.size,
        "parity": export.parity.as_dict(),
    }
    return export.scorer, detail
