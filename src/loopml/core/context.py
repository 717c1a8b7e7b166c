"""What steps share while a pipeline runs.

The engine hands one :class:`StepContext` to every step in order. A step
reads what earlier steps left and leaves its own results there; the engine
notices which entries a step added or replaced and persists exactly those,
so a resumed run can restore them instead of running the step again.

Two kinds of entries. Frames, models and reports go into the mappings
``data``, ``models`` and ``reports`` by name (a spec names its frames).
The facts the built-in steps hand each other are typed fields
(:data:`TYPED_OUTPUTS`: ``loaded``, ``trained``, ``registered``, ``gate``,
``data_validation``, ``evaluation``, ``warnings``), each a frozen dataclass,
so a misspelt key is an attribute error caught by mypy, not a silent
``None``. ``values`` stays as a free mapping for third-party steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.core.settings import Settings
from loopml.core.spec import ExperimentConfig

if TYPE_CHECKING:
    import pandas as pd

ProgressCallback = Callable[[str, float, float | None], None]
"""``progress(description, completed, total)``; ``total`` ``None`` means unknown."""

# The mappings a step may write to, in the order the engine persists them.
SLOTS: tuple[str, ...] = ("data", "models", "reports", "values")

# The typed fields a step may set, in the order the engine persists them.
TYPED_OUTPUTS: tuple[str, ...] = (
    "loaded",
    "trained",
    "registered",
    "gate",
    "data_validation",
    "evaluation",
    "warnings",
)

GateVerdict = Literal["promoted", "refused", "awaiting_approval", "already_champion", "held"]
"""``held``: a smoke run or a reproduction judged the challenger but moves no alias."""


@dataclass(frozen=True)
class LoadedData:
    """What a loader read: the frame's fingerprint, origin and shape."""

    frame: str
    fingerprint: str
    source: str
    shape: tuple[int, int]


@dataclass(frozen=True)
class TrainedModel:
    """The model ``train_model`` chose, as logged to MLflow."""

    estimator: str
    model_uri: str
    mlflow_run_id: str
    main_metric: str
    main_metric_value: float
    seconds: float


@dataclass(frozen=True)
class RegisteredModel:
    """The registry version holding this run's trained model."""

    name: str
    version: str
    model_uri: str

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> RegisteredModel | None:
        """Read back what :meth:`StepContext.output_record` stored (``None`` when absent)."""
        if not isinstance(record, Mapping) or not {"name", "version"} <= set(record):
            return None
        return cls(str(record["name"]), str(record["version"]), str(record.get("model_uri", "")))


@dataclass(frozen=True)
class GateDecision:
    """What ``validate_model`` decided about the challenger, and why."""

    decision: GateVerdict
    reason: str
    model_name: str
    metric: str
    frame: str
    rows: int
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    threshold: float | None
    min_delta: float

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> GateDecision | None:
        """Read back what :meth:`StepContext.output_record` stored (``None`` when absent).

        Lenient with runs recorded by older versions: a missing figure reads as
        ``None`` (or 0 rows), versions are read as text.
        """
        if not isinstance(record, Mapping) or "decision" not in record:
            return None

        def text(key: str) -> str | None:
            value = record.get(key)
            return None if value is None else str(value)

        def number(key: str) -> float | None:
            value = record.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            decision=record["decision"],
            reason=str(record.get("reason") or ""),
            model_name=str(record.get("model_name") or ""),
            metric=str(record.get("metric") or ""),
            frame=str(record.get("frame") or ""),
            rows=int(record.get("rows") or 0),
            challenger_version=text("challenger_version") or "",
            challenger_score=number("challenger_score") or 0.0,
            champion_version=text("champion_version"),
            champion_score=number("champion_score"),
            threshold=number("threshold"),
            min_delta=number("min_delta") or 0.0,
        )


@dataclass(frozen=True)
class DataValidation:
    """How ``validate_data`` found the data against its reference."""

    reference: str
    status: Literal["profiled", "ok", "warned", "failed"]
    issues: tuple[str, ...] = ()
    kinds: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """``evaluate_model``'s metrics of a model on a frame."""

    model: str
    frame: str
    rows: int
    metrics: Mapping[str, float]


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
    dicts meant for people, ``values`` small facts of third-party steps. The
    typed fields are the built-in steps' results. ``pipeline`` names every
    step of the run in order, so a step can tell whether another will follow
    (``register_model`` leaves promotion to a ``validate_model`` anywhere in
    the pipeline).

    ``seed`` (the run's recorded seed: the spec's ``session_id`` wins) and
    ``threads`` make a run repeatable; ``smoke`` asks for the fast profile;
    ``reproduces`` names the run being reproduced. A step that runs code from
    outside loopml (an MLproject) appends its folder to ``code_paths`` so the
    run's code hash covers it.
    """

    run_id: str
    experiment: ExperimentConfig
    settings: Settings
    base_dir: Path
    spec_hash: str = ""
    mlflow_run_id: str | None = None
    pipeline: tuple[str, ...] = ()
    data: dict[str, pd.DataFrame] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    loaded: LoadedData | None = None
    trained: TrainedModel | None = None
    registered: RegisteredModel | None = None
    gate: GateDecision | None = None
    data_validation: DataValidation | None = None
    evaluation: Evaluation | None = None
    warnings: tuple[str, ...] = ()
    progress: ProgressCallback = _no_progress
    seed: int | None = None
    threads: int | None = None
    smoke: bool = False
    reproduces: str | None = None
    code_paths: list[Path] = field(default_factory=list)

    @property
    def holds_aliases(self) -> bool:
        """A smoke run or a reproduction registers, but never moves an alias (no champion)."""
        return self.smoke or self.reproduces is not None

    def slot(self, name: str) -> dict[str, Any]:
        """One of :data:`SLOTS` by name."""
        if name not in SLOTS:
            raise KeyError(name)
        mapping: dict[str, Any] = getattr(self, name)
        return mapping

    def entries(self) -> dict[str, Any]:
        """Every output by its name: ``"slot/key"`` for mapping entries, the field name else.

        Unset typed fields (``None``, no warnings) are left out. The engine
        persists and restores outputs by these names.
        """
        found: dict[str, Any] = {
            f"{slot}/{key}": value for slot in SLOTS for key, value in self.slot(slot).items()
        }
        for name in TYPED_OUTPUTS:
            value = getattr(self, name)
            if value is not None and value != ():
                found[name] = value
        return found

    def put(self, name: str, value: Any) -> None:
        """Set the output ``name`` (as :meth:`entries` names it), e.g. when restoring."""
        slot, separator, key = name.partition("/")
        if separator:
            self.slot(slot)[key] = value
        elif name in TYPED_OUTPUTS:
            setattr(self, name, value)
        else:
            raise KeyError(name)

    def output_record(self) -> dict[str, Any]:
        """The typed outputs as JSON-ready dicts, for the run's record in the metadata store."""
        record: dict[str, Any] = {}
        for name in TYPED_OUTPUTS:
            value = getattr(self, name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                record[name] = dataclasses.asdict(value)
            elif value:
                record[name] = list(value)
        return record

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
