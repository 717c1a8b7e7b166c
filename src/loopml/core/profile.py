"""Reference profiles: what training data looked like, and how a later batch differs from it.

:func:`build_profile` summarises a training frame (columns, dtypes, ranges,
category sets, null rates, quantiles, binned distributions) into a small
JSON-serialisable :class:`ReferenceProfile` that travels with the model.
:func:`check_batch` compares any later frame with it and returns one
:class:`SkewReport` holding every schema issue (missing, extra, retyped
columns) and value issue (out-of-range values, unseen categories, null-rate
jumps, distribution shift) at once.

This module imports only pandas, numpy and pydantic, so the serving and batch
layers can use it without the scikit-learn world. The checks are written here
rather than with pandera: a profile implies a handful of vectorised
comparisons, two of which (null-rate jumps and distribution shift against a
reference) pandera does not express, and scoring a single request must cost
microseconds, which :class:`ProfileChecker` gets from lookups precomputed
once per profile. One implementation serves training, batch scoring and
serving, so the three can never disagree about what skew is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FILE = "reference_profile.json"
"""The artifact name a profile has next to its model in MLflow."""

Kind = Literal["numeric", "boolean", "categorical", "datetime"]
QUANTILE_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BIN_LEVELS: tuple[float, ...] = tuple(i / 10 for i in range(1, 10))
MAX_CATEGORIES = 200
"""Above this many distinct values a text column is free text: no category set is kept."""

SCHEMA_KINDS: tuple[str, ...] = ("missing_column", "extra_column", "retyped_column")
VALUE_KINDS: tuple[str, ...] = (
    "out_of_range",
    "unseen_category",
    "null_rate_jump",
    "distribution_shift",
)
_EPSILON = 1e-4


class SkewThresholds(BaseModel):
    """How much difference from the reference counts as skew."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    null_rate_jump: float = Field(
        default=0.1, ge=0, le=1, description="Largest allowed rise in a column's share of nulls."
    )
    max_out_of_range_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest share of rows allowed outside the training [min, max] of a column.",
    )
    max_unseen_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest share of rows allowed to hold a category training never saw.",
    )
    distribution_psi: float = Field(
        default=0.25,
        gt=0,
        description="Population stability index above which a column's distribution shifted.",
    )
    min_rows_for_distribution: int = Field(
        default=100, ge=2, description="Smaller batches are not tested for distribution shift."
    )


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

    _checkers: dict[SkewThresholds, ProfileChecker] = PrivateAttr(default_factory=dict)

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

    def checker(self, thresholds: SkewThresholds | None = None) -> ProfileChecker:
        """The compiled checker for ``thresholds``, built once and kept (serving's hot path)."""
        key = thresholds or SkewThresholds()
        found = self._checkers.get(key)
        if found is None:
            found = self._checkers[key] = ProfileChecker(self, key)
        return found


@dataclass(frozen=True)
class SkewIssue:
    """One way a batch differs from the reference: ``what`` happened to ``column``."""

    column: str
    what: str
    expected: str
    found: str
    rate: float | None = None

    @property
    def message(self) -> str:
        return (
            f"column {self.column!r}: {self.what.replace('_', ' ')}; "
            f"expected {self.expected}, found {self.found}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "what": self.what,
            "expected": self.expected,
            "found": self.found,
            "rate": self.rate,
        }


@dataclass(frozen=True)
class SkewReport:
    """Every difference between one batch and the reference, schema first."""

    rows: int
    schema_issues: tuple[SkewIssue, ...] = ()
    value_issues: tuple[SkewIssue, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.schema_issues and not self.value_issues

    @property
    def has_schema_skew(self) -> bool:
        """True when the batch cannot be scored as is (serving answers 422)."""
        return bool(self.schema_issues)

    @property
    def issues(self) -> tuple[SkewIssue, ...]:
        return self.schema_issues + self.value_issues

    def kinds(self) -> dict[str, list[str]]:
        """``{what: [columns]}`` for a compact summary."""
        found: dict[str, list[str]] = {}
        for issue in self.issues:
            found.setdefault(issue.what, []).append(issue.column)
        return found

    def render(self) -> str:
        if self.ok:
            return f"no skew in {self.rows} rows"
        count = len(self.issues)
        lines = [f"{count} skew issue{'s' if count != 1 else ''} in {self.rows} rows:"]
        lines += [f"  - {issue.message}" for issue in self.issues]
        return "\n".join(lines)

    def raise_for_schema_skew(self, where: str = "the batch") -> None:
        """Raise :class:`SkewError` naming every schema issue, if there is any.

        Batch scoring calls this before scoring; value skew is only recorded.
        """
        if self.schema_issues:
            from loopml.core.errors import SkewError

            lines = "\n".join(f"  - {issue.message}" for issue in self.schema_issues)
            raise SkewError(
                f"{where} does not fit the model's reference profile "
                f"({len(self.schema_issues)} schema issue(s)):\n{lines}",
                self,
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "schema_issues": [issue.to_dict() for issue in self.schema_issues],
            "value_issues": [issue.to_dict() for issue in self.value_issues],
        }


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


def check_batch(
    profile: ReferenceProfile, frame: pd.DataFrame, thresholds: SkewThresholds | None = None
) -> SkewReport:
    """Every schema and value difference between ``frame`` and ``profile``, in one report.

    A target column named in the profile is ignored when present.
    """
    return profile.checker(thresholds).check_frame(frame)


def check_records(
    profile: ReferenceProfile,
    records: Sequence[Mapping[str, Any]],
    thresholds: SkewThresholds | None = None,
) -> SkewReport:
    """:func:`check_batch` for a few JSON-like rows, without building a frame (serving)."""
    return profile.checker(thresholds).check_records(records)


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


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors (0 = same; > 0.25 = shifted)."""
    total = 0.0
    for want, got in zip(expected, actual, strict=True):
        e, a = max(float(want), _EPSILON), max(float(got), _EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@dataclass
class _Column:
    """A column profile turned into plain lookups, once."""

    name: str
    kind: Kind
    dtype: str
    null_rate: float
    low: float | None
    high: float | None
    categories: frozenset[str] | None
    profile: ColumnProfile
    bins: Any = None
    bin_shares: Any = None


_PY_KIND: dict[type, Kind] = {
    bool: "boolean",
    int: "numeric",
    float: "numeric",
    str: "categorical",
}


@dataclass
class _Tally:
    nulls: int = 0
    out_of_range: int = 0
    unseen: list[str] = field(default_factory=list)
    retyped: str | None = None


class ProfileChecker:
    """A profile compiled for fast checks: column lookups, ranges and category sets precomputed.

    Build it once per model (``profile.checker()`` caches it) and call
    :meth:`check_records` per request: a one-row request costs a few
    microseconds of dictionary lookups, no pandas.
    """

    def __init__(self, profile: ReferenceProfile, thresholds: SkewThresholds) -> None:
        import numpy as np

        self.profile = profile
        self.thresholds = thresholds
        self.target = profile.target
        self.columns: dict[str, _Column] = {}
        for column in profile.columns:
            self.columns[column.name] = _Column(
                name=column.name,
                kind=column.kind,
                dtype=column.dtype,
                null_rate=column.null_rate,
                low=column.minimum if column.kind == "numeric" else None,
                high=column.maximum if column.kind == "numeric" else None,
                categories=frozenset(column.categories) if column.categories is not None else None,
                profile=column,
                bins=np.asarray(column.bin_edges, dtype="float64") if column.bin_edges else None,
                bin_shares=column.bin_shares or None,
            )
        self.names = frozenset(self.columns)

    def check_records(self, records: Sequence[Mapping[str, Any]]) -> SkewReport:
        """Check JSON-like rows (``[{column: value}]``); a large batch goes through pandas."""
        rows = len(records)
        if rows >= self.thresholds.min_rows_for_distribution:
            import pandas as pd

            return self.check_frame(pd.DataFrame.from_records(records))
        seen: set[str] = set()
        for record in records:
            seen.update(record)
        tallies: dict[str, _Tally] = {}
        for name in self.names & seen:
            column = self.columns[name]
            tally = _Tally()
            for record in records:
                value: Any = record.get(name)
                if value is None or _is_missing(value):
                    tally.nulls += 1
                    continue
                kind = _PY_KIND.get(type(value)) or _python_kind(value)
                if kind != column.kind:
                    if not _compatible(column.kind, kind):
                        tally.retyped = type(value).__name__
                        break
                    if column.kind == "datetime":
                        continue
                    value = str(value)
                if column.low is not None and column.high is not None:
                    if value < column.low or value > column.high:
                        tally.out_of_range += 1
                elif column.categories is not None and str(value) not in column.categories:
                    tally.unseen.append(str(value))
            tallies[name] = tally
        missing = [name for name in self.columns if name not in seen]
        extra = sorted(seen - self.names - {self.target or ""})
        return self._report(rows, missing, extra, tallies, {})

    def check_frame(self, frame: pd.DataFrame) -> SkewReport:
        """Check a whole frame, vectorised per column; small frames take the record path.

        Per-column pandas calls cost tens of microseconds each, so a frame too
        small for the distribution test is checked row by row instead.
        """
        rows = int(frame.shape[0])
        if rows < self._min_rows:
            records = frame.to_dict("records")
            return self.check_records([{str(k): v for k, v in row.items()} for row in records])
        return self.check_columns(frame)

    def check_columns(self, frame: pd.DataFrame) -> SkewReport:
        """The vectorised check, whatever the frame's size (``check_frame`` picks for you)."""
        rows = int(frame.shape[0])
        present = {str(name): name for name in frame.columns}
        tallies: dict[str, _Tally] = {}
        shifts: dict[str, float] = {}
        for name, column in self.columns.items():
            if name not in present:
                continue
            series = frame[present[name]]
            tally = _Tally(nulls=int(series.isna().sum()))
            tallies[name] = tally
            kind = _kind_of(series)
            if kind is None:
                continue
            if kind != column.kind and not _compatible(column.kind, kind):
                tally.retyped = str(series.dtype)
                continue
            values = series.dropna()
            if column.kind == "numeric" and column.low is not None and column.high is not None:
                numbers = values.astype("float64").to_numpy()
                tally.out_of_range = int(((numbers < column.low) | (numbers > column.high)).sum())
                if column.bins is not None and len(numbers) >= self._min_rows:
                    shifts[name] = psi(column.bin_shares, _shares(numbers, column.bins))
            elif column.categories is not None:
                text = values.astype(str)
                known = text.isin(column.categories)
                tally.unseen = text[~known].tolist()
                if len(text) >= self._min_rows:
                    shifts[name] = _category_psi(column.profile.categories or {}, text[known])
        missing = [name for name in self.columns if name not in present]
        extra = sorted(set(present) - self.names - {self.target or ""})
        return self._report(rows, missing, extra, tallies, shifts)

    @property
    def _min_rows(self) -> int:
        return self.thresholds.min_rows_for_distribution

    def _report(
        self,
        rows: int,
        missing: Iterable[str],
        extra: Iterable[str],
        tallies: Mapping[str, _Tally],
        shifts: Mapping[str, float],
    ) -> SkewReport:
        limits = self.thresholds
        schema: list[SkewIssue] = []
        values: list[SkewIssue] = []
        for name in missing:
            column = self.columns[name]
            schema.append(SkewIssue(name, "missing_column", f"a {column.kind} column", "nothing"))
        for name in extra:
            schema.append(SkewIssue(name, "extra_column", "no such column", "a column"))
        denominator = max(rows, 1)
        for name, tally in tallies.items():
            column = self.columns[name]
            if tally.retyped is not None:
                schema.append(
                    SkewIssue(
                        name,
                        "retyped_column",
                        f"{column.kind} ({column.dtype})",
                        f"{tally.retyped} values",
                    )
                )
                continue
            rate = tally.out_of_range / denominator
            if tally.out_of_range and rate > limits.max_out_of_range_rate:
                values.append(
                    SkewIssue(
                        name,
                        "out_of_range",
                        f"values in [{column.low:g}, {column.high:g}]",
                        f"{tally.out_of_range} of {rows} rows outside",
                        rate,
                    )
                )
            rate = len(tally.unseen) / denominator
            if tally.unseen and rate > limits.max_unseen_rate:
                examples = ", ".join(repr(v) for v in sorted(set(tally.unseen))[:5])
                values.append(
                    SkewIssue(
                        name,
                        "unseen_category",
                        f"one of the {len(column.categories or ())} training categories",
                        f"{len(tally.unseen)} rows with unseen values ({examples})",
                        rate,
                    )
                )
            rate = tally.nulls / denominator
            if rate - column.null_rate > limits.null_rate_jump:
                values.append(
                    SkewIssue(
                        name,
                        "null_rate_jump",
                        f"about {column.null_rate:.1%} nulls",
                        f"{rate:.1%} nulls",
                        rate,
                    )
                )
            shift = shifts.get(name)
            if shift is not None and shift > limits.distribution_psi:
                values.append(
                    SkewIssue(
                        name,
                        "distribution_shift",
                        f"PSI <= {limits.distribution_psi:g} against the training distribution",
                        f"PSI {shift:.3f}",
                        shift,
                    )
                )
        return SkewReport(rows, tuple(schema), tuple(values))


def _compatible(expected: Kind, found: Kind) -> bool:
    """Whether values of kind ``found`` can stand for a column profiled as ``expected``.

    Categories may arrive as numbers or booleans (codes) and date-times as ISO
    text (JSON has no date type); anything else is a retyped column.
    """
    if expected == "categorical":
        return found in ("numeric", "boolean")
    return expected == "datetime" and found == "categorical"


def _is_missing(value: Any) -> bool:
    """NaN, NaT and pandas' NA, without importing pandas."""
    if isinstance(value, float):
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def _python_kind(value: Any) -> Kind:
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | float | np.integer | np.floating):
        return "numeric"
    if isinstance(value, datetime):
        return "datetime"
    return "categorical"


def _category_psi(reference: Mapping[str, float], known: pd.Series) -> float:
    """PSI over the training categories only: unseen values are reported on their own."""
    if len(known) == 0:
        return 0.0
    shares = known.value_counts(normalize=True)
    return psi(list(reference.values()), [float(shares.get(key, 0.0)) for key in reference])
