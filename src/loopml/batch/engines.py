"""Batch scoring engines by name: ``local``, ``queue``, ``spark``, and third-party ones.

One function (:func:`get_engine`) turns a name into an engine; the CLI
(``loopml predict-batch --engine``) and programmatic callers go through it.
Built-in engines are named by ``module:attribute`` and imported on first use,
so choosing ``local`` never imports Celery or PySpark. A package adds an
engine through the ``loopml.batch_engines`` entry point group, the way step
plugins use ``loopml.steps``; it may not replace a built-in engine.

An engine streams ``request.input`` chunk by chunk, writes one batch-log
segment per chunk (:mod:`loopml.store.batchlog`), appends the scores to
``request.output`` and reports ``progress(chunks_done, chunks_total)``.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from loopml.batch.models import ModelRef
from loopml.core.errors import ConfigError
from loopml.core.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "loopml.batch_engines"
BUILTIN = {
    "local": "loopml.batch.local:LocalEngine",
    "queue": "loopml.queue.batches:QueueEngine",
    "spark": "loopml.batch.spark:SparkEngine",
}

Progress = Callable[[int, int | None], None]
"""``progress(chunks_done, chunks_total)``; the total is ``None`` when unknown (CSV)."""


@dataclass
class BatchRequest:
    """What to score with which version, where the scores go, and how big a chunk is."""

    settings: Settings
    model: ModelRef
    input: str
    output: str
    batch_rows: int = 10_000
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    master: str | None = None
    timeout_seconds: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    quote_values: bool = True
    """Whether an error may quote a value of the input (off for a remote client's job)."""


@dataclass
class BatchResult:
    """What an engine did: rows scored, how fast, where the scores and the log went."""

    engine: str
    job_id: str
    model: str
    version: str
    rows: int
    chunks: int
    seconds: float
    output: str
    log: str
    startup_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class Engine(Protocol):
    """A batch scoring engine: score the request, report chunk progress, say what it did."""

    name: str

    def score(self, request: BatchRequest, progress: Progress | None = None) -> BatchResult: ...


def engine_names() -> list[str]:
    """Every engine that can be asked for: the built-in ones and installed plugins."""
    names = set(BUILTIN)
    names.update(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def get_engine(name: str) -> Engine:
    """The engine called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    location = BUILTIN.get(name)
    origin = "loopml"
    if location is None:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name == name:
                location = entry.value
                origin = entry.dist.name if entry.dist is not None else "a plugin"
                break
    if location is None:
        raise ConfigError(
            f"no batch engine named {name!r}; known engines: {', '.join(engine_names())} "
            f"(plugins register under the {ENTRY_POINT_GROUP!r} entry point group)"
        )
    module_name, _, attribute = location.partition(":")
    try:
        found: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"batch engine {name!r} from {origin} cannot be loaded: {exc}") from exc
    engine = found() if isinstance(found, type) else found
    if not callable(getattr(engine, "score", None)):
        raise ConfigError(f"batch engine {name!r} from {origin} has no score(request, progress)")
    return engine  # type: ignore[no-any-return]


def total_chunks(path: str, batch_rows: int) -> int | None:
    """How many chunks ``path`` makes, from Parquet metadata; ``None`` for CSV (unknown)."""
    if not str(path).lower().endswith((".parquet", ".pq")):
        return None
    import pyarrow.parquet as pq

    from loopml.batch.files import _filesystem

    filesystem, location = _filesystem(path)
    with filesystem.open_input_file(location) as handle:
        rows = pq.ParquetFile(handle).metadata.num_rows
    return max(1, -(-rows // batch_rows)) if rows else 0


class Clock:
    """Seconds since it was made (one definition of an engine's elapsed time)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started
