"""Persisting what a step left in the context, and restoring it for a resume.

Frames go as Parquet, everything else as pickle, into the pipeline's MLflow
parent run under ``loopml/steps/<position>_<name>/``. The metadata store keeps
the artifact URIs as the step's outputs, so a resume on any machine that sees
the same artifact store can pick them up.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

from loopml.core.context import SLOTS, StepContext

Snapshot = dict[str, dict[str, int]]


def snapshot(context: StepContext) -> Snapshot:
    """Identity of every entry, to tell afterwards what a step added or replaced."""
    return {slot: {key: id(value) for key, value in context.slot(slot).items()} for slot in SLOTS}


def changed(context: StepContext, before: Snapshot) -> list[tuple[str, str]]:
    """(slot, key) pairs the step added or replaced since ``before``."""
    return [
        (slot, key)
        for slot in SLOTS
        for key, value in context.slot(slot).items()
        if before[slot].get(key) != id(value)
    ]


def persist(
    context: StepContext, entries: list[tuple[str, str]], artifact_path: str, mlflow: Any
) -> dict[str, str]:
    """Write ``entries`` to the active MLflow run; ``{"slot/key": artifact URI}``."""
    if not entries:
        return {}
    pointers: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="loopml-outputs-") as folder:
        root = Path(folder)
        for slot, key in entries:
            value = context.slot(slot)[key]
            file_name = _file_name(slot, key, value)
            target = root / slot / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(value, target, slot)
            pointers[f"{slot}/{key}"] = f"{artifact_path}/{slot}/{file_name}"
        mlflow.log_artifacts(str(root), artifact_path=artifact_path)
    return {name: mlflow.get_artifact_uri(path) for name, path in pointers.items()}


def restore(context: StepContext, outputs: dict[str, str], mlflow: Any) -> None:
    """Put a finished step's persisted outputs back into ``context``."""
    for name, uri in outputs.items():
        slot, _, key = name.partition("/")
        with tempfile.TemporaryDirectory(prefix="loopml-restore-") as folder:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))
            context.slot(slot)[key] = _read(local)


def _file_name(slot: str, key: str, value: Any) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    return f"{safe}.parquet" if _is_frame(value) else f"{safe}.pkl"


def _is_frame(value: Any) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _write(value: Any, target: Path, slot: str) -> None:
    if target.suffix == ".parquet":
        value.to_parquet(target, index=True)
        return
    with target.open("wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _read(path: Path) -> Any:
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path)
    with path.open("rb") as handle:
        return pickle.load(handle)
