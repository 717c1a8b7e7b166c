"""Persisting what a step left in the context, and restoring it for a resume.

Frames go as Parquet, everything else as pickle, into the pipeline's MLflow
parent run under ``loopml/steps/<position>_<name>/``. The metadata store keeps
the artifact URIs as the step's outputs, keyed by the output's name
(``data/train``, ``trained``, ``registered``...), so a resume on any machine
that sees the same artifact store can pick them up and put each back where it
was.

Each URI carries the SHA-256 of the file written (``<uri>#sha256=<hex>``), and
a resume refuses a file that hashes differently: unpickling runs code, and the
artifact store is writable by anyone with tracking access, whereas the
metadata store is loopml's own (the same rule as model trust, docs/security.md).
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
from pathlib import Path
from typing import Any

from loopml.core.context import StepContext
from loopml.core.errors import LoopmlError

Snapshot = dict[str, int]


def snapshot(context: StepContext) -> Snapshot:
    """Identity of every output, to tell afterwards what a step added or replaced.

    Typed outputs are frozen dataclasses (and ``warnings`` a tuple), so a step
    that changes one replaces it, and the identity changes with it.
    """
    return {name: id(value) for name, value in context.entries().items()}


def changed(context: StepContext, before: Snapshot) -> list[str]:
    """Names (``"slot/key"`` or a typed field) the step added or replaced since ``before``."""
    return [name for name, value in context.entries().items() if before.get(name) != id(value)]


def persist(
    context: StepContext, names: list[str], artifact_path: str, mlflow: Any
) -> dict[str, str]:
    """Write the outputs ``names`` to the active MLflow run; ``{name: artifact URI}``."""
    if not names:
        return {}
    entries = context.entries()
    pointers: dict[str, str] = {}
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="loopml-outputs-") as folder:
        root = Path(folder)
        for name in names:
            value = entries[name]
            slot, separator, key = name.partition("/")
            relative = f"{slot}/{_file_name(key, value)}" if separator else _file_name(name, value)
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(value, target)
            pointers[name] = f"{artifact_path}/{relative}"
            digests[name] = _sha256(target)
        mlflow.log_artifacts(str(root), artifact_path=artifact_path)
    return {
        name: f"{mlflow.get_artifact_uri(path)}{_HASH}{digests[name]}"
        for name, path in pointers.items()
    }


def restore(context: StepContext, outputs: dict[str, str], mlflow: Any) -> None:
    """Put a finished step's persisted outputs back into ``context``, each checked first.

    A file whose hash differs from the one recorded when it was written is
    refused before it is read. (Outputs recorded before hashes were, without
    one, are read as before.)
    """
    for name, pointer in outputs.items():
        uri, _, expected = pointer.partition(_HASH)
        with tempfile.TemporaryDirectory(prefix="loopml-restore-") as folder:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))
            if expected and _sha256(local) != expected:
                raise LoopmlError(
                    f"step output {name!r} at {uri} changed since the step wrote it (recorded "
                    f"sha256 {expected}, now {_sha256(local)}); refusing to load it. Start a "
                    "new run instead of resuming this one"
                )
            context.put(name, _read(local))


_HASH = "#sha256="


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_name(key: str, value: Any) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)
    return f"{safe}.parquet" if _is_frame(value) else f"{safe}.pkl"


def _is_frame(value: Any) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


def _write(value: Any, target: Path) -> None:
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
