"""A batch job asked for over HTTP (``POST /batches``): checked where it arrives and where it runs.

The paths come from a remote client, so they are held to the batch roots
(``LOOPML_BATCH_ROOTS``, default ``$LOOPML_HOME/data``): an absolute local
path whose real path (symlinks and ``..`` resolved) is under a root, with a
CSV or Parquet suffix. Nothing is opened or listed to decide: a path outside
the roots gets the same answer whether or not it exists, and no refusal ever
holds anything read from a file. The API checks an order before queueing it
and the worker checks it again before reading a row (a message may come from
another client, and the disk may have changed in between).

The model reference is checked for its grammar and the engine name through
:func:`loopml.batch.engines.get_engine`, the same function the CLI uses; the
model itself is resolved by the worker (the API contacts no registry).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loopml.batch.engines import get_engine
from loopml.batch.files import FORMATS
from loopml.batch.models import ModelRef
from loopml.core.access import is_url
from loopml.core.errors import AccessError, DataError
from loopml.core.settings import Settings

MAX_BATCH_ROWS = 1_000_000
"""Largest chunk a remote client may ask for (a chunk is held in memory)."""
_SHOWN = 120


@dataclass(frozen=True)
class BatchOrder:
    """A checked batch job: the model reference as written, real paths, the engine's name."""

    model: str
    input: str
    output: str
    engine: str
    batch_rows: int = 10_000
    by_reference: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_roots(settings: Settings) -> tuple[Path, ...]:
    """The real paths of the batch roots (``LOOPML_BATCH_ROOTS``, else ``$LOOPML_HOME/data``)."""
    return tuple(Path(os.path.realpath(root)) for root in settings.batch_folders)


def roots_text(roots: tuple[Path, ...]) -> str:
    return ", ".join(str(root) for root in roots)


def _shown(path: str) -> str:
    """The client's own path, cut short: a refusal never repeats megabytes back."""
    return repr(path) if len(path) <= _SHOWN else repr(path[:_SHOWN]) + "..."


def allowed_path(path: str, role: str, roots: tuple[Path, ...]) -> Path:
    """The real path of ``path`` when it is under a root; :class:`AccessError` otherwise.

    The refusal names the roots and the path as given, never the path it
    resolves to, and does not depend on whether anything exists there.
    """
    refusal = AccessError(
        f"{role} path {_shown(path)} is not allowed: batch jobs submitted over HTTP read and "
        f"write only absolute paths under the batch roots ({roots_text(roots)}; "
        "LOOPML_BATCH_ROOTS)"
    )
    if "\0" in path or is_url(path) or not Path(path).is_absolute():
        raise refusal
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):  # a name too long for the system, say
        raise refusal from None
    if not any(real != root and real.is_relative_to(root) for root in roots):
        raise refusal
    return real


def _check_format(path: str, real: Path, role: str) -> None:
    for suffix in (Path(path).suffix.lower(), real.suffix.lower()):
        if suffix not in FORMATS:
            raise DataError(
                f"{role} path {_shown(path)}: unsupported format {suffix or '(no suffix)'!r}; "
                f"give a CSV or Parquet file ({', '.join(FORMATS)})"
            )


def check_order(
    settings: Settings,
    *,
    model: str,
    input: str,
    output: str,
    engine: str,
    batch_rows: int = 10_000,
    by_reference: bool = False,
) -> BatchOrder:
    """The order with its paths resolved, or the first thing wrong with it.

    Raises :class:`AccessError` for a path outside the roots,
    ``ModelReferenceError`` for a malformed model, ``ConfigError`` for an
    unknown engine and :class:`DataError` for the rest.
    """
    roots = batch_roots(settings)
    source = allowed_path(input, "input", roots)
    target = allowed_path(output, "output", roots)
    _check_format(input, source, "input")
    _check_format(output, target, "output")
    if source == target:
        raise DataError("the output path is the input file; give another output path")
    artifacts = settings.artifacts
    if artifacts and not is_url(artifacts.removeprefix("file://")):
        store = Path(os.path.realpath(artifacts.removeprefix("file://")))
        if target.is_relative_to(store):
            raise DataError(
                f"output path {_shown(output)} is inside the artifact store ({store}); "
                "give a path outside it"
            )
    if not 1 <= batch_rows <= MAX_BATCH_ROWS:
        raise DataError(f"batch_rows {batch_rows}: give 1 to {MAX_BATCH_ROWS:,}")
    reference = ModelRef.parse(model)
    get_engine(engine)
    return BatchOrder(
        model=str(reference),
        input=str(source),
        output=str(target),
        engine=engine,
        batch_rows=batch_rows,
        by_reference=by_reference,
    )
