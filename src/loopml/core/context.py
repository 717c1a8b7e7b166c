"""What steps share while a pipeline runs.

The engine hands one :class:`StepContext` to every step in order. A step
reads what earlier steps left (``data``, ``models``, ``reports``, ``values``)
and leaves its own results in the same mappings; the engine notices which
entries a step added or replaced and persists exactly those, so a resumed run
can restore them instead of running the step again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.core.settings import Settings
from loopml.core.spec import ExperimentConfig

if TYPE_CHECKING:
    import pandas as pd

ProgressCallback = Callable[[str, float, float | None], None]
"""``progress(description, completed, total)``; ``total`` ``None`` means unknown."""

# The mappings a step may write to, in the order the engine persists them.
SLOTS: tuple[str, ...] = ("data", "models", "reports", "values")


def resolve_path(path: str, base_dir: Path) -> str:
    """``path`` made absolute against ``base_dir`` when it is local and relative."""
    if "://" in path:
        return path
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base_dir / candidate).resolve())


def _no_progress(description: str, completed: float, total: float | None) -> None:
    return None


@dataclass
class StepContext:
    """The state of one pipeline run as its steps see it.

    ``data`` holds frames by name; loaders write ``data["train"]``, the frame
    training uses. ``models`` holds fitted models, ``reports`` tables and
    dicts meant for people, ``values`` small facts later steps need (a
    registered version, a data fingerprint, an MLflow run id).
    """

    run_id: str
    experiment: ExperimentConfig
    settings: Settings
    base_dir: Path
    spec_hash: str = ""
    mlflow_run_id: str | None = None
    data: dict[str, pd.DataFrame] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    progress: ProgressCallback = _no_progress

    def slot(self, name: str) -> dict[str, Any]:
        """One of :data:`SLOTS` by name."""
        if name not in SLOTS:
            raise KeyError(name)
        mapping: dict[str, Any] = getattr(self, name)
        return mapping

    def resolve_path(self, path: str) -> str:
        """A local relative path resolved against the spec's folder; URLs pass through."""
        return resolve_path(path, self.base_dir)

    def require_frame(self, name: str = "train") -> pd.DataFrame:
        """The frame ``name``, or a clear error saying which step should have made it."""
        from loopml.core.errors import DataError

        if name not in self.data:
            have = ", ".join(sorted(self.data)) or "none"
            raise DataError(
                f"no data frame named {name!r} is loaded (loaded: {have}); put a load_data_* "
                "step before this one"
            )
        return self.data[name]
