"""Drift of one column between the reference and a window, computed from sketches.

The choice of test follows Evidently's defaults, so results are comparable
with a tool people know, and stays honest at large sample sizes:

- reference of at most 1,000 rows: two-sample Kolmogorov-Smirnov for numeric
  columns (exact statistic from the sketches, asymptotic p-value), chi-square
  test of homogeneity for categorical ones, two-proportion z-test for binary
  ones; drift when p < 0.05.
- larger references: p-values shrink with sample size until any shift, however
  meaningless, is "significant". There we measure effect size instead:
  Wasserstein-1 distance divided by the reference's standard deviation for
  numeric columns, Jensen-Shannon distance (natural log) for categorical ones
  and for numeric ones with at most 5 distinct values; drift when >= 0.1.

Wasserstein-1 is the integral of |F_ref - F_cur|. Both CDFs are known
exactly at every edge of the reference grid; between two edges we integrate
the linear interpolation of the difference. The difference between two
edges stays within an interval as wide as the probability mass the two
samples put strictly between them, so the error of each gap is at most
``width * (mass_ref + mass_cur)``; the sum over gaps, divided by the same
norm, is returned as ``error_bound`` with every score. Beyond the reference
range the integral is exact (summed distances of the values out there).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loopml.monitoring.sketch import CategoricalSketch, FloatArray, NumericSketch

SMALL_REFERENCE = 1_000
P_VALUE = 0.05
DISTANCE = 0.1

KS, CHI_SQUARE, Z_TEST = "ks", "chisquare", "z"
WASSERSTEIN, JENSEN_SHANNON = "wasserstein", "jensenshannon"
P_VALUE_METHODS = frozenset({KS, CHI_SQUARE, Z_TEST})


@dataclass(frozen=True)
class ColumnDrift:
    """The drift figure of one column in one window.

    ``score`` is a p-value for the small-sample tests (drift when below
    ``threshold``) and a distance otherwise (drift when at or above it).
    """

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool
    error_bound: float = 0.0
    reference_rows: int = 0
    current_rows: int = 0
    current_missing: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def method_for(kind: str, reference_rows: int) -> str:
    """Evidently's default test for a column of ``kind`` (numeric, discrete, binary...)."""
    small = reference_rows <= SMALL_REFERENCE
    if kind == "numeric":
        return KS if small else WASSERSTEIN
    if kind == "binary":
        return Z_TEST if small else JENSEN_SHANNON
    return CHI_SQUARE if small else JENSEN_SHANNON


def default_threshold(method: str) -> float:
    return P_VALUE if method in P_VALUE_METHODS else DISTANCE


def numeric_drift(
    column: str,
    reference: NumericSketch,
    current: NumericSketch,
    method: str,
    threshold: float | None = None,
) -> ColumnDrift:
    limit = default_threshold(method) if threshold is None else threshold
    if method == KS:
        statistic = ks_statistic(reference, current)
        score = ks_p_value(statistic, reference.count, current.count)
        bound = 0.0
        drifted = score < limit
    else:
        distance, error = wasserstein(reference, current)
        norm = max(reference.std, 0.001)
        score, bound = distance / norm, error / norm
        drifted = score >= limit
    return ColumnDrift(
        column,
        method,
        float(score),
        limit,
        bool(drifted),
        float(bound),
        reference.count,
        current.count,
        current.missing,
    )


def categorical_drift(
    column: str,
    reference: CategoricalSketch,
    current: CategoricalSketch,
    method: str,
    threshold: float | None = None,
) -> ColumnDrift:
    limit = default_threshold(method) if threshold is None else threshold
    keys = sorted(set(reference.counts) | set(current.counts))
    if method == JENSEN_SHANNON:
        score = jensen_shannon(reference.shares(keys), current.shares(keys))
        drifted = score >= limit
    else:
        table = np.array(
            [
                [reference.counts.get(key, 0) for key in keys],
                [current.counts.get(key, 0) for key in keys],
            ],
            dtype=np.float64,
        )
        score = z_test(table) if method == Z_TEST else chi_square(table)
        drifted = score < limit
    return ColumnDrift(
        column,
        method,
        float(score),
        limit,
        bool(drifted),
        0.0,
        reference.count,
        current.count,
        current.missing,
    )


def ks_statistic(reference: NumericSketch, current: NumericSketch) -> float:
    """sup |F_ref - F_cur|; exact when the edges are all the reference's values.

    Between two such edges F_ref is flat and F_cur monotone, so the supremum
    is reached at an edge or just before one, where both CDFs are known.
    """
    before = np.abs(reference.cdf_before() - current.cdf_before())
    at = np.abs(reference.cdf_at() - current.cdf_at())
    return float(max(before.max(initial=0.0), at.max(initial=0.0)))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sample p-value, as scipy's ``ks_2samp(method="asymp")``."""
    from scipy import stats

    if not n or not m:
        return 1.0
    effective = round(n * m / (n + m))
    return float(stats.kstwo.sf(statistic, max(effective, 1)))


def wasserstein(reference: NumericSketch, current: NumericSketch) -> tuple[float, float]:
    """Wasserstein-1 distance between the two sketched samples, and its error bound."""
    edges = reference.edges
    n_ref, n_cur = max(reference.count, 1), max(current.count, 1)
    # Beyond the grid: the integral of the CDF (below) or 1 - CDF (above).
    tail_ref = reference.below_distance / n_ref, reference.above_distance / n_ref
    tail_cur = current.below_distance / n_cur, current.above_distance / n_cur
    distance = sum(abs(a - b) for a, b in zip(tail_ref, tail_cur, strict=True))
    error = sum(2 * min(a, b) for a, b in zip(tail_ref, tail_cur, strict=True))
    if edges.size > 1:
        widths = np.diff(edges)
        start = (reference.cdf_at() - current.cdf_at())[:-1]
        end = (reference.cdf_before() - current.cdf_before())[1:]
        distance += float(np.sum(widths * _mean_abs_linear(start, end)))
        inside_mass = reference.inside / n_ref + current.inside / n_cur
        error += float(np.sum(widths * inside_mass))
    return float(distance), float(error)


def _mean_abs_linear(start: FloatArray, end: FloatArray) -> FloatArray:
    """Mean of |f| over [0, 1] for f linear from ``start`` to ``end``."""
    same_sign = start * end >= 0
    total = np.abs(start) + np.abs(end)
    crossing = np.divide(start**2 + end**2, 2 * total, out=np.zeros_like(total), where=total > 0)
    return np.where(same_sign, total / 2, crossing)


def jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    """Jensen-Shannon distance with natural logarithms (scipy's and Evidently's default)."""
    from scipy.spatial import distance

    if not p.sum() or not q.sum():
        return 0.0
    return float(distance.jensenshannon(p, q))


def chi_square(table: FloatArray) -> float:
    """p-value of the chi-square test that both rows come from the same distribution."""
    from scipy import stats

    kept = table[:, table.sum(axis=0) > 0]
    if kept.shape[1] < 2 or (kept.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(kept, correction=False).pvalue)


def z_test(table: FloatArray) -> float:
    """p-value of the two-proportion z-test on a two-category column."""
    from scipy import stats

    kept = table[:, table.sum(axis=0) > 0]
    if kept.shape[1] < 2:
        return 1.0
    n_ref, n_cur = kept.sum(axis=1)
    if not n_ref or not n_cur:
        return 1.0
    p_ref, p_cur = kept[0, 0] / n_ref, kept[1, 0] / n_cur
    pooled = (kept[0, 0] + kept[1, 0]) / (n_ref + n_cur)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    if spread == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(p_ref - p_cur) / spread))
