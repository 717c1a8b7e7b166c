"""Exporting one registered version to ONNX, and finding the export a version already has.

An export is converted, parity-checked on the version's reference rows, and
only then written: to ``--output``, and onto the version (the file as an
artifact of the run that logged the model, under ``onnx/``; its SHA-256, the
artifact's URI and the parity figure as version tags). The ONNX file is not
put into the model's own artifact folder: that folder's content hash is what
model trust (:mod:`loopml.registry.trust`) vouches for, and adding a file to
it would make every later load refuse the version.

An ONNX graph holds no code (it is not unpickled), so loading an existing
export needs no trust record; its bytes are checked against the version's
tag and parity-checked again before they serve.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.core.settings import Settings
from loopml.export.errors import ExportError
from loopml.export.parity import Parity, compare, reference_rows, require
from loopml.export.runtime import OnnxScorer
from loopml.registry.loading import LoadedVersion
from loopml.registry.project_model import ProjectClassifier, ProjectRegressor
from loopml.registry.reference import ModelReference
from loopml.registry.tracking import use_tracking

log = logging.getLogger(__name__)

SHA256_TAG = "loopml.onnx.sha256"
ARTIFACT_TAG = "loopml.onnx.artifact"
PARITY_TAG = "loopml.onnx.parity_max_abs_diff"
ARTIFACT_DIR = "onnx"


@dataclass
class Export:
    """One version's ONNX graph, checked, with what was measured."""

    name: str
    version: str
    data: bytes
    scorer: OnnxScorer
    parity: Parity
    latency_ms: dict[str, float]
    sha256: str
    artifact_uri: str | None = None
    output: str | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "format": "onnx",
            "output": self.output,
            "size_bytes": self.size,
            "sha256": self.sha256,
            "artifact_uri": self.artifact_uri,
            "one_row_latency_ms": self.latency_ms,
            "parity": self.parity.as_dict(),
            "dropped_steps": self.dropped,
            "inputs": [item.as_dict() for item in self.scorer.inputs],
        }


def export_version(
    settings: Settings, ref: ModelReference, output: Path | None, *, record: bool = True
) -> Export:
    """Export what ``ref`` points at: convert, check parity, write ``output``, log on the version.

    :class:`ParityError` or :class:`ExportError` leave nothing written.
    """
    from loopml.lifecycle import load_trusted

    loaded = load_trusted(settings, ref)
    export = build_export(loaded)
    if output is not None:
        _write(output, export.data)
        export.output = str(output)
    if record:
        export.artifact_uri = record_on_version(settings, loaded, export)
    return export


def build_export(loaded: LoadedVersion) -> Export:
    """``loaded`` converted and parity-checked (nothing written anywhere)."""
    from loopml.export.convert import convert_pipeline
    from loopml.export.torch_onnx import convert_torch, is_torch

    name = f"{loaded.name}_v{loaded.version}"
    # a project's model (run_mlflow_project) is a pyfunc seen through its output contract
    project = isinstance(loaded.pipeline, ProjectRegressor)
    if loaded.pipeline is not None and not project:
        converted = convert_pipeline(loaded.pipeline, name=name)
    elif is_torch(loaded.pyfunc):
        schema = loaded.pyfunc.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            raise ExportError(f"{loaded.uri}: a PyTorch model needs a signature of named columns")
        problem_type, classes = None, None
        if isinstance(loaded.pipeline, ProjectClassifier):
            problem_type, classes = "classification", loaded.pipeline.classes_.tolist()
        elif project:
            problem_type = "regression"
        try:
            converted = convert_torch(
                loaded.pyfunc,
                list(schema.input_names()),
                name,
                problem_type=problem_type,
                classes=classes,
            )
        except ExportError as exc:
            raise ExportError(f"{loaded.uri}: {exc}") from exc
    else:
        raise ExportError(
            f"{loaded.uri} is a {loaded.flavor} model without a converter; loopml exports "
            "its scikit-learn/imbalanced-learn pipelines and PyTorch models to ONNX"
        )
    data = converted.to_bytes()
    scorer = OnnxScorer(data)
    parity = check(loaded, scorer)
    return Export(
        loaded.name,
        loaded.version,
        data,
        scorer,
        parity,
        one_row_latency(scorer, _rows(loaded).head(1)),
        hashlib.sha256(data).hexdigest(),
        dropped=converted.dropped,
    )


def check(loaded: LoadedVersion, scorer: OnnxScorer) -> Parity:
    """The parity check of ``scorer`` against ``loaded`` on the version's reference rows."""
    rows = _rows(loaded)
    try:
        expected = loaded.score(rows)
    except ValueError as exc:  # a project model's output that its contract cannot read
        raise ExportError(
            f"{loaded.uri}: the model cannot score its reference rows ({exc}), so there is "
            "nothing to check an ONNX graph against (docs/onnx.md)"
        ) from exc
    measured = compare(expected, scorer.score(rows), loaded.classes is not None)
    return require(measured, loaded.uri)


def served_export(settings: Settings, loaded: LoadedVersion) -> Export:
    """The version's ONNX graph for serving: its recorded export if it has one, else a new one.

    Either way the graph is parity-checked against the loaded pipeline before
    it is returned; a recorded file whose bytes do not match the version's
    tag is refused.
    """
    from loopml.registry.models import get_version

    tags = get_version(settings, loaded.name, loaded.version).tags
    artifact, sha256 = tags.get(ARTIFACT_TAG), tags.get(SHA256_TAG)
    if not artifact or not sha256:
        export = build_export(loaded)
        export.artifact_uri = record_on_version(settings, loaded, export)
        return export
    data = _download(settings, artifact)
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ExportError(
            f"{loaded.uri}: its ONNX file {artifact} hashes to {found}, not to its "
            f"{SHA256_TAG} tag {sha256}; re-export it with `loopml export`"
        )
    scorer = OnnxScorer(data)
    parity = check(loaded, scorer)
    return Export(
        loaded.name,
        loaded.version,
        data,
        scorer,
        parity,
        one_row_latency(scorer, _rows(loaded).head(1), repeat=20),
        sha256,
        artifact_uri=artifact,
    )


def record_on_version(settings: Settings, loaded: LoadedVersion, export: Export) -> str:
    """Log the file as an artifact of the version's run and tag the version with its hash."""
    if not loaded.run_id:
        raise ExportError(
            f"{loaded.uri} has no run to log the ONNX file on; pass --no-record to only write it"
        )
    mlflow = use_tracking(settings)
    client = mlflow.MlflowClient()
    # named by content: conversion is deterministic, so servers exporting the same version at
    # once (several workers at a hot swap) write the same file and the same tags
    filename = f"{loaded.name}-v{loaded.version}-{export.sha256[:12]}.onnx"
    with tempfile.TemporaryDirectory(prefix="loopml-onnx-") as folder:
        path = Path(folder) / filename
        path.write_bytes(export.data)
        client.log_artifact(loaded.run_id, str(path), artifact_path=ARTIFACT_DIR)
    uri = f"runs:/{loaded.run_id}/{ARTIFACT_DIR}/{filename}"
    for key, value in (
        (SHA256_TAG, export.sha256),
        (ARTIFACT_TAG, uri),
        (PARITY_TAG, f"{export.parity.max_abs_diff:.3g}"),
    ):
        client.set_model_version_tag(loaded.name, loaded.version, key, value)
    return uri


def one_row_latency(scorer: OnnxScorer, row: pd.DataFrame, repeat: int = 200) -> dict[str, float]:
    """Milliseconds to score one row from a frame (feeding included), after a warm-up."""
    scorer.score(row)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        scorer.score(row)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50": round(statistics.median(times), 4),
        "p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 4),
    }


def _rows(loaded: LoadedVersion) -> pd.DataFrame:
    example = getattr(loaded.pyfunc, "input_example", None)
    frame = example if isinstance(example, pd.DataFrame) else None
    return reference_rows(loaded.profile, frame)


def _download(settings: Settings, uri: str) -> bytes:
    mlflow = use_tracking(settings)
    with tempfile.TemporaryDirectory(prefix="loopml-onnx-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        except Exception as exc:
            raise ExportError(f"cannot download the ONNX file {uri}: {exc}") from exc
        return Path(local).read_bytes()


def _write(output: Path, data: bytes) -> None:
    """Write ``data`` to ``output`` whole or not at all (a temporary file renamed over it)."""
    output = output.expanduser()
    if output.is_dir():
        raise ExportError(f"--output {output} is a folder; give a file name such as model.onnx")
    if not output.parent.is_dir():
        raise ExportError(f"--output {output}: the folder {output.parent} does not exist")
    partial = output.with_name(f".{output.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(output)
    except BaseException as exc:  # Ctrl-C mid-write too: no .partial file is left behind
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write --output {output}: {exc}") from exc
        raise
