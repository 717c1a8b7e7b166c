"""Checking batches and single requests against a reference profile, fast.

A :class:`ProfileChecker` turns a profile into plain lookups once (column
kinds, ranges, category sets, histogram bins); serving keeps one per loaded
model (``checker_for(profile)``) and checks each request in microseconds, batch
scoring checks whole frames vectorised per column. Reach it through
:func:`loopml.core.profile.check_batch` / ``check_records``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopml.core.profile import ColumnProfile, Kind, ReferenceProfile, _kind_of, _shares
from loopml.core.skew import SkewIssue, SkewReport, SkewThresholds, psi

if TYPE_CHECKING:
    import pandas as pd


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

    Build it once per model (:func:`checker_for` caches it on the profile) and call
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
        tallies = {
            name: self._tally(self.columns[name], [record.get(name) for record in records])
            for name in self.names & seen
        }
        missing = [name for name in self.columns if name not in seen]
        extra = sorted(seen - self.names - {self.target or ""})
        return self._report(rows, missing, extra, tallies, {})

    def check_arrays(
        self, columns: Mapping[str, Any], rows: int, extra: Iterable[str] = ()
    ) -> SkewReport:
        """Check one request's parsed columns (numpy arrays or lists), without pandas.

        Serving calls this for multi-row requests: numeric arrays are checked
        vectorised (a few microseconds per column), other columns value by
        value. There is no distribution test here: one request is no sample of
        a distribution; the monitor tests windows of the prediction log.
        ``extra`` names columns the request sent beyond ``columns``.
        """
        import numpy as np

        tallies: dict[str, _Tally] = {}
        for name, values in columns.items():
            column = self.columns.get(name)
            if column is None:
                continue
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiuM":
                if values.dtype.kind == "M":
                    tallies[name] = (
                        _Tally(nulls=int(np.isnat(values).sum()))
                        if column.kind == "datetime"
                        else _Tally(retyped=str(values.dtype))
                    )
                    continue
                if column.kind == "numeric":
                    numbers = values.astype("float64", copy=False)
                    tally = _Tally(nulls=int(np.isnan(numbers).sum()))
                    if column.low is not None and column.high is not None:
                        outside = (numbers < column.low) | (numbers > column.high)
                        tally.out_of_range = int(outside.sum())
                    tallies[name] = tally
                    continue
            listed = values.tolist() if isinstance(values, np.ndarray) else list(values)
            tallies[name] = self._tally(column, listed)
        missing = [name for name in self.columns if name not in columns]
        unknown = sorted(set(extra) - self.names - {self.target or ""})
        return self._report(rows, missing, unknown, tallies, {})

    @staticmethod
    def _tally(column: _Column, values: Sequence[Any]) -> _Tally:
        """Nulls, out-of-range values and unseen categories of one column, value by value."""
        tally = _Tally()
        for value in values:
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
        return tally

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


def checker_for(
    profile: ReferenceProfile, thresholds: SkewThresholds | None = None
) -> ProfileChecker:
    """The compiled checker of ``profile`` for ``thresholds``, built once and kept on the profile.

    Serving calls this on its hot path; a hot swap brings a new profile and
    so a new checker.
    """
    key = thresholds or SkewThresholds()
    found: ProfileChecker | None = profile._checkers.get(key)
    if found is None:
        found = profile._checkers[key] = ProfileChecker(profile, key)
    return found


def check_batch(
    profile: ReferenceProfile, frame: pd.DataFrame, thresholds: SkewThresholds | None = None
) -> SkewReport:
    """Every schema and value difference between ``frame`` and ``profile``, in one report.

    A target column named in the profile is ignored when present.
    """
    return checker_for(profile, thresholds).check_frame(frame)


def check_records(
    profile: ReferenceProfile,
    records: Sequence[Mapping[str, Any]],
    thresholds: SkewThresholds | None = None,
) -> SkewReport:
    """:func:`check_batch` for a few JSON-like rows, without building a frame (serving)."""
    return checker_for(profile, thresholds).check_records(records)
