"""Per-column summaries that are fed chunk by chunk and never hold the column itself.

A :class:`NumericSketch` counts values on the reference's grid of edges (its
unique values when there are few, else ~2,000 of its quantiles): how many
values sit exactly on each edge, how many strictly between neighbours, and
the count and summed distance of values beyond the reference's range. That
is enough to know both CDFs exactly at every edge, which gives the
Kolmogorov-Smirnov statistic exactly and the Wasserstein-1 distance within a
bound computed alongside it (see :mod:`loopml.monitoring.drift`). Memory is
O(edges) per column whatever the number of rows, and merging two sketches
(adding their counts) equals sketching the concatenated data.

A :class:`CategoricalSketch` keeps one count per category.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MAX_EDGES = 2_049
MISSING = "(missing)"


def grid_for(ordered: FloatArray, max_edges: int = MAX_EDGES) -> FloatArray:
    """The edges a sorted numeric column is sketched on: its unique values, or a fine grid.

    The fine grid is ``max_edges`` quantiles (order statistics, so fine where
    the reference is dense) merged with ``max_edges`` evenly spaced points
    from its minimum to its maximum (so no gap is wide where it is sparse,
    which is where a drifted window puts its mass). Minimum and maximum are
    always edges.
    """
    if ordered.size == 0:
        return np.zeros(1)
    unique = distinct(ordered)
    if unique.size <= max_edges:
        return unique
    ranks = np.ceil(np.linspace(0.0, 1.0, max_edges) * ordered.size).astype(np.int64) - 1
    quantiles = ordered[ranks.clip(0, ordered.size - 1)]
    even = np.linspace(ordered[0], ordered[-1], max_edges)
    return distinct(np.sort(np.concatenate((quantiles, even))))


def distinct(ordered: FloatArray) -> FloatArray:
    """The unique values of a sorted array, in one pass."""
    if ordered.size == 0:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return np.asarray(ordered[keep], dtype=np.float64)


@dataclass
class NumericSketch:
    """Counts of a numeric column on a fixed grid of ``edges`` (see the module docstring)."""

    edges: FloatArray
    at: IntArray = field(init=False)
    inside: IntArray = field(init=False)
    below: int = 0
    above: int = 0
    below_distance: float = 0.0
    above_distance: float = 0.0
    missing: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    total: float = 0.0
    total_squares: float = 0.0

    def __post_init__(self) -> None:
        self.at = np.zeros(self.edges.size, dtype=np.int64)
        self.inside = np.zeros(max(self.edges.size - 1, 0), dtype=np.int64)

    @property
    def count(self) -> int:
        """Values seen, missing ones excluded."""
        return int(self.at.sum() + self.inside.sum()) + self.below + self.above

    def update(self, values: FloatArray) -> None:
        """Add a chunk of values (NaN counts as missing)."""
        ordered = np.sort(values)  # NaN sorts last
        present = int(np.count_nonzero(~np.isnan(ordered)))
        self.missing += int(ordered.size - present)
        self.update_sorted(ordered[:present])

    def update_sorted(self, x: FloatArray) -> None:
        """Add a sorted chunk without missing values: counts come from where edges fall in it."""
        if x.size == 0:
            return
        edges = self.edges
        left = np.searchsorted(x, edges, side="left")
        right = np.searchsorted(x, edges, side="right")
        self.at += right - left
        self.inside += left[1:] - right[:-1]
        below, above_from = int(left[0]), int(right[-1])
        self.below += below
        self.above += x.size - above_from
        if below:
            self.below_distance += float(edges[0] * below - x[:below].sum())
        if above_from < x.size:
            self.above_distance += float(x[above_from:].sum() - edges[-1] * (x.size - above_from))
        self.low = min(self.low, float(x[0]))
        self.high = max(self.high, float(x[-1]))
        self.total += float(x.sum())
        self.total_squares += float(np.einsum("i,i->", x, x))  # BLAS dot: threads, overhead

    def merge(self, other: NumericSketch) -> None:
        """Add ``other`` (sketched on the same edges) into this sketch."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("numeric sketches can only be merged on the same edges")
        self.at += other.at
        self.inside += other.inside
        self.below += other.below
        self.above += other.above
        self.below_distance += other.below_distance
        self.above_distance += other.above_distance
        self.missing += other.missing
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.total += other.total
        self.total_squares += other.total_squares

    @property
    def mean(self) -> float:
        n = self.count
        return self.total / n if n else float("nan")

    @property
    def std(self) -> float:
        """Population standard deviation (as numpy's default), from running sums."""
        n = self.count
        if not n:
            return float("nan")
        variance = max(self.total_squares / n - self.mean**2, 0.0)
        return float(np.sqrt(variance))

    def cdf_before(self) -> FloatArray:
        """P(X < edge) for every edge."""
        n = max(self.count, 1)
        steps = np.concatenate(([self.below], self.at[:-1] + self.inside))
        return np.asarray(np.cumsum(steps) / n, dtype=np.float64)

    def cdf_at(self) -> FloatArray:
        """P(X <= edge) for every edge."""
        return self.cdf_before() + self.at / max(self.count, 1)

    def display(self, bins: IntArray) -> tuple[FloatArray, FloatArray]:
        """Density on coarse bins made of the edges at indices ``bins``, plus the tails.

        Returns ``(edges, density)``; the first and last bins reach to the
        lowest and highest values seen when they lie beyond the grid.
        """
        n = max(self.count, 1)
        cumulative = np.concatenate(([0], np.cumsum(self.at[:-1] + self.inside)))
        # mass from edge bins[i] (inclusive) up to edge bins[i+1] (exclusive); the
        # last coarse bin also takes the mass exactly on the highest edge.
        mass = np.diff(cumulative[bins]).astype(np.float64)
        if mass.size:
            mass[-1] += self.at[-1]
        edges = self.edges[bins].astype(np.float64)
        if self.below:
            edges = np.concatenate(([self.low], edges))
            mass = np.concatenate(([float(self.below)], mass))
        if self.above:
            edges = np.concatenate((edges, [self.high]))
            mass = np.concatenate((mass, [float(self.above)]))
        widths = np.diff(edges)
        widths[widths <= 0] = 1.0
        return edges, np.asarray(mass / n / widths, dtype=np.float64)


def display_bins(
    edges: FloatArray, reference: FloatArray | None = None, count: int = 30
) -> IntArray:
    """Indices of about ``count`` edges, evenly spread between the 0.5% and 99.5% quantiles."""
    if edges.size <= count + 1:
        return np.arange(edges.size, dtype=np.int64)
    low, high = (edges[0], edges[-1]) if reference is None else (reference[0], reference[1])
    targets = np.linspace(low, high, count + 1)
    picked = np.searchsorted(edges, targets).clip(0, edges.size - 1)
    return np.unique(np.concatenate(([0], picked, [edges.size - 1]))).astype(np.int64)


@dataclass
class CategoricalSketch:
    """One count per category; missing values are a category of their own."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def missing(self) -> int:
        return self.counts.get(MISSING, 0)

    def update(self, values: pd.Series[Any]) -> None:
        for key, number in values.value_counts(dropna=False, sort=False).items():
            name = category_key(key)
            self.counts[name] = self.counts.get(name, 0) + int(number)

    def merge(self, other: CategoricalSketch) -> None:
        for key, number in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + number

    def shares(self, keys: list[str]) -> FloatArray:
        total = max(self.count, 1)
        return np.array([self.counts.get(key, 0) / total for key in keys], dtype=np.float64)


def category_key(value: Any) -> str:
    """One spelling per category whatever JSON or pandas made of it (1, 1.0, True, "1")."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
