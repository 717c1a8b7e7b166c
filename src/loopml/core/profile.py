"""Reference profiles: what training data looked like, and how a later batch differs from it.

:func:`build_profile` summarises a training frame (columns, dtypes, ranges,
category sets, null rates, quantiles, binned distributions) into a small
JSON-serialisable :class:`ReferenceProfile` that travels with the model.
:func:`loopml.core.checker.check_batch` compares any later frame with it and returns one
:class:`SkewReport` holding every schema issue (missing, extra, retyped
columns) and value issue (out-of-range values, unseen categories, null-rate
jumps, distribution shift) at once.

This module imports only pandas, numpy and pydantic, so the serving and batch
layers can use it without the scikit-learn world. The checks are written here
rather than with pandera: a profile implies a handful of vectorised
comparisons, two of which (null-rate jumps and distribution shift against a
reference) pandera does not express, and scoring a single request must cost
microseconds, which :class:`loopml.core.checker.ProfileChecker` gets from lookups precomputed
once per profile (``checker_for(profile)``; the checker imports this module, never the
reverse, so the two form no cycle). One implementation serves training, batch scoring and
serving, so the three can never disagree about what skew is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from loopml.core.skew import (
    SCHEMA_KINDS,
    VALUE_KINDS,
    SkewIssue,
    SkewReport,
    SkewThresholds,
    psi,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PROFILE_FILE",
    "SCHEMA_KINDS",
    "VALUE_KINDS",
    "ColumnProfile",
    "ReferenceProfile",
    "SkewIssue",
    "SkewReport",
    "SkewThresholds",
    "build_profile",
    "psi",
]

PROFILE_FILE = "reference_profile.json"
"""The artifact name a profile has next to its model in MLflow."""

Kind = Literal["numeric", "boolean", "categorical", "datetime"]
QUANTILE_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BIN_LEVELS: tuple[float, ...] = tuple(i / 10 for i in range(1, 10))
MAX_CATEGORIES = 200
"""Above this many distinct values a text column is free text: no category set is kept."""


class ColumnProfile(BaseModel):
    """One feature column of the training data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: str
    kind: Kind
    null_rate: float
    distinct: int
    minimum: float | None = None
    maximum: float | None = None
    quantiles: dict[str, float] = Field(default_factory=dict)
    bin_edges: list[float] = Field(default_factory=list)
    bin_shares: list[float] = Field(default_factory=list)
    categories: dict[str, float] | None = None


class ReferenceProfile(BaseModel):
    """The training data a model learned from, summarised to check later data against."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    target: str | None = None
    rows: int
    columns: list[ColumnProfile]
    target_column: ColumnProfile | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    _checkers: dict[SkewThresholds, Any] = PrivateAttr(default_factory=dict)
    """Compiled checkers by thresholds, filled by ``loopml.core.checker.checker_for``."""

    @property
    def column_names(self) -> list[str]:
        """The feature columns, in training order."""
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        return cls.model_validate_json(text)


def build_profile(frame: pd.DataFrame, target: str | None = None) -> ReferenceProfile:
    """The reference profile of ``frame``; ``target`` is profiled apart from the features."""
    if frame.shape[0] == 0:
        raise ValueError("cannot profile an empty frame")
    features = [str(name) for name in frame.columns if name != target]
    columns = [_profile_column(str(name), frame[name]) for name in features]
    target_column = (
        _profile_column(target, frame[target])
        if target is not None and target in frame.columns
        else None
    )
    return ReferenceProfile(
        target=target, rows=int(frame.shape[0]), columns=columns, target_column=target_column
    )


def _kind_of(series: pd.Series) -> Kind | None:
    """What a column holds; ``None`` when it holds only nulls (nothing to say)."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "empty":
        return None
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    if inferred == "boolean":
        return "boolean"
    if inferred in ("datetime64", "datetime", "date"):
        return "datetime"
    return "categorical"


def _profile_column(name: str, series: pd.Series) -> ColumnProfile:
    import numpy as np

    kind = _kind_of(series) or "categorical"
    values = series.dropna()
    common: dict[str, Any] = {
        "name": name,
        "dtype": str(series.dtype),
        "kind": kind,
        "null_rate": float(series.isna().mean()),
        "distinct": int(values.nunique()),
    }
    if kind == "numeric" and len(values):
        numbers = values.astype("float64").to_numpy()
        quantiles = np.quantile(numbers, QUANTILE_LEVELS)
        edges = np.unique(np.quantile(numbers, BIN_LEVELS))
        shares = _shares(numbers, edges)
        return ColumnProfile(
            **common,
            minimum=float(numbers.min()),
            maximum=float(numbers.max()),
            quantiles={
                f"{level:g}": float(q) for level, q in zip(QUANTILE_LEVELS, quantiles, strict=True)
            },
            bin_edges=[float(edge) for edge in edges],
            bin_shares=[float(share) for share in shares],
        )
    if kind == "datetime" and len(values):
        import pandas as pd

        stamps = pd.to_datetime(values)
        return ColumnProfile(
            **common,
            minimum=float(stamps.min().timestamp()),
            maximum=float(stamps.max().timestamp()),
        )
    if kind in ("categorical", "boolean") and common["distinct"] <= MAX_CATEGORIES:
        shares = values.astype(str).value_counts(normalize=True)
        return ColumnProfile(
            **common, categories={str(key): float(share) for key, share in shares.items()}
        )
    return ColumnProfile(**common)


def _shares(numbers: Any, edges: Any) -> Any:
    """Share of ``numbers`` in each of the ``len(edges) + 1`` bins the inner edges make."""
    import numpy as np

    index = np.searchsorted(edges, numbers, side="right")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return counts / max(len(numbers), 1)
