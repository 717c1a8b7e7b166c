"""Per-feature drift: honest at large samples, chunk-invariant, equal to the textbook figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from loopml.monitoring import Reference, tally


def _frames(rows: int, seed: int, shifts: dict[str, float]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "steady": rng.normal(0, 1, rows),
            "nudged": rng.normal(0, 1, rows),
            "moved": rng.normal(0, 1, rows),
            "skewed": rng.exponential(2.0, rows),
            "city": rng.choice(["a", "b", "c", "d"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "plan": rng.choice(["free", "pro"], rows, p=[0.7, 0.3]),
            "count": rng.integers(0, 4, rows),
        }
    )
    for column, amount in shifts.items():
        frame[column] = frame[column] + amount
    return frame


def test_large_samples_flag_real_shifts_and_ignore_meaningless_ones() -> None:
    rows = 100_000
    reference_frame = _frames(rows, 1, {})
    current = _frames(rows, 2, {"nudged": 0.03, "moved": 0.5, "skewed": 1.0})
    rng = np.random.default_rng(3)
    current["city"] = rng.choice(["a", "b", "c", "d"], rows, p=[0.2, 0.3, 0.2, 0.3])
    result = tally(Reference.from_frame(reference_frame), [current]).result(0, complete=True)
    drifted = set(result.drifted)
    assert drifted == {"moved", "skewed", "city"}
    # a plain KS test calls the 0.03-sigma nudge significant at this size; we do not
    assert stats.ks_2samp(reference_frame["nudged"], current["nudged"]).pvalue < 0.05
    methods = {c.column: c.method for c in result.drift}
    assert methods["moved"] == "wasserstein" and methods["city"] == "jensenshannon"
    assert methods["count"] == "jensenshannon"  # numeric with 4 values: compared as categories


def test_chunked_sketches_equal_one_shot() -> None:
    reference = Reference.from_frame(_frames(20_000, 4, {}))
    current = _frames(30_000, 5, {"moved": 0.2})
    whole = tally(reference, [current]).result(0, complete=True)
    chunks = [current.iloc[start : start + 1_777] for start in range(0, len(current), 1_777)]
    chunked = tally(reference, chunks).result(0, complete=True)
    for one, many in zip(whole.drift, chunked.drift, strict=True):
        assert one.column == many.column
        assert one.score == pytest.approx(many.score, rel=1e-12, abs=1e-15)
        assert one.drifted == many.drifted
    whole_tally = tally(reference, [current])
    chunked_tally = tally(reference, chunks)
    for name, sketch in whole_tally.sketches.items():
        other = chunked_tally.sketches[name]
        if hasattr(sketch, "at"):
            assert np.array_equal(sketch.at, other.at)
            assert np.array_equal(sketch.inside, other.inside)
        else:
            assert sketch.counts == other.counts


def test_wasserstein_from_sketches_is_within_its_bound_of_the_exact_value() -> None:
    reference_frame = _frames(50_000, 6, {})
    current = _frames(50_000, 7, {"moved": 0.4, "skewed": 3.0})
    current.loc[:99, "moved"] = 25.0  # beyond the reference's range
    result = tally(Reference.from_frame(reference_frame), [current]).result(0, complete=True)
    for column in result.drift:
        if column.method != "wasserstein":
            continue
        ref, cur = reference_frame[column.column], current[column.column]
        exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert abs(column.score - exact) <= column.error_bound
        assert abs(column.score - exact) < 1e-3


def test_small_references_use_p_value_tests_like_scipy() -> None:
    reference_frame = _frames(800, 8, {})
    current = _frames(3_000, 9, {"moved": 0.3})
    result = tally(Reference.from_frame(reference_frame), [current]).result(0, complete=True)
    by_name = {c.column: c for c in result.drift}
    for name in ("steady", "moved", "skewed"):
        expected = stats.ks_2samp(reference_frame[name], current[name], method="asymp").pvalue
        assert by_name[name].method == "ks"
        assert by_name[name].score == pytest.approx(expected, rel=1e-9)
    assert by_name["moved"].drifted and not by_name["steady"].drifted
    table = pd.crosstab(
        np.r_[np.zeros(800), np.ones(3_000)], np.r_[reference_frame["city"], current["city"]]
    )
    assert by_name["city"].method == "chisquare"
    assert by_name["city"].score == pytest.approx(
        stats.chi2_contingency(table.to_numpy(), correction=False).pvalue
    )
    assert by_name["plan"].method == "z"
