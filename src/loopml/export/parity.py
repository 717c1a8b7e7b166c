"""The parity check: the ONNX graph must score the version's reference rows as the pipeline does.

ONNX runs in float32 where scikit-learn runs in float64; for most models the
difference is ~1e-7, but a tree split on a value float32 cannot hold (an
XGBoost model behind a StandardScaler: 0.36) silently changes answers. So an
export is refused unless, on the version's reference rows, every label is the
same and the probabilities (values, for a regressor) differ by at most
:data:`TOLERANCE`.

The reference rows are what the version keeps: the input example logged with
it and rows drawn from its reference profile (without one, from the example's
values) (each numeric column's
quantiles, bin edges and range, each category, and nulls where training had
them), mixed with a fixed seed so interactions between columns are covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.profile import ReferenceProfile
from loopml.export.errors import ParityError
from loopml.registry.loading import Scores

TOLERANCE = 1e-5
PROFILE_ROWS = 200


@dataclass(frozen=True)
class Parity:
    """What the check measured."""

    rows: int
    max_abs_diff: float
    label_mismatches: int
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.label_mismatches == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "label_mismatches": self.label_mismatches,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def compare(expected: Scores, got: Scores, classifier: bool) -> Parity:
    """The largest difference and the label mismatches between two scorings of the same rows."""
    rows = len(expected.predictions)
    if classifier:
        assert expected.probabilities is not None and got.probabilities is not None
        diff = np.abs(expected.probabilities - got.probabilities)
        labels = np.asarray(expected.predictions).tolist()
        mismatches = sum(
            a != b for a, b in zip(labels, np.asarray(got.predictions).tolist(), strict=True)
        )
    else:
        # a regressor's values have the target's scale: compare relative to it (>= 1)
        scale = max(1.0, float(np.max(np.abs(expected.predictions), initial=0.0)))
        diff = np.abs(np.asarray(expected.predictions, float) - got.predictions) / scale
        mismatches = 0
    worst = float(np.nanmax(diff, initial=0.0))
    if np.isnan(diff).any():
        worst = float("inf")
    return Parity(rows, worst, int(mismatches))


def require(parity: Parity, what: str) -> Parity:
    """``parity`` if it passed, else :class:`ParityError` with the figures."""
    if parity.passed:
        return parity
    raise ParityError(
        f"refusing to export {what}: the ONNX graph does not score like the model on "
        f"{parity.rows} reference rows (max abs difference {parity.max_abs_diff:.3g}, "
        f"allowed {parity.tolerance:g}; {parity.label_mismatches} label(s) differ). "
        "ONNX computes in float32; a tree split on a value float32 cannot hold (e.g. XGBoost "
        "behind a StandardScaler) changes answers. Nothing was written",
        parity.max_abs_diff,
        parity.label_mismatches,
    )


def reference_rows(
    profile: ReferenceProfile | None, example: pd.DataFrame | None, seed: int = 7
) -> pd.DataFrame:
    """The rows a version keeps: its input example plus rows drawn from its reference profile."""
    frames = [] if example is None else [example.reset_index(drop=True)]
    if profile is not None:
        frames.append(profile_rows(profile, PROFILE_ROWS, seed))
    elif example is not None and len(example):
        frames.append(example_rows(example, PROFILE_ROWS, seed))
    if not frames:
        raise ParityError(
            "the version has neither an input example nor a reference profile: there are no "
            "reference rows to check the ONNX graph on",
            float("nan"),
            0,
        )
    frame = pd.concat(frames, ignore_index=True)
    if example is not None:
        frame = frame[[c for c in example.columns if c in frame.columns]]
    return frame


def example_rows(example: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Without a profile: ``n`` rows mixing the example's values column by column (numbers
    also drawn across the example's range, widened by half of it on each side)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for name in example.columns:
        values = example[name].to_numpy()
        picked = values[rng.integers(0, len(values), n)]
        if pd.api.types.is_float_dtype(example[name]):
            finite = values[np.isfinite(values.astype(float))].astype(float)
            if finite.size:
                low, high = float(finite.min()), float(finite.max())
                spread = (high - low) / 2 or abs(low) / 2 or 1.0
                drawn = rng.uniform(low - spread, high + spread, n)
                picked = np.where(rng.random(n) < 0.5, picked.astype(float), drawn)
        columns[str(name)] = picked
    return pd.DataFrame(columns)


def profile_rows(profile: ReferenceProfile, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows mixing, per column, the values its profile knows (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for column in profile.columns:
        if column.kind == "categorical" or column.kind == "boolean":
            known = list((column.categories or {}).keys())
            if column.kind == "boolean":
                values: list[Any] = [bool(i % 2) for i in range(n)]
            else:
                values = [known[i % len(known)] if known else np.nan for i in range(n)]
                rng.shuffle(values)
        elif column.kind == "numeric":
            points = [column.minimum, column.maximum, *column.quantiles.values()]
            points += list(column.bin_edges)
            grid = np.asarray([p for p in points if p is not None], dtype=np.float64)
            if grid.size == 0:
                grid = np.zeros(1)
            low, high = float(grid.min()), float(grid.max())
            picked = grid[rng.integers(0, grid.size, n)]
            between = rng.uniform(low, high, n)
            values_array = np.where(rng.random(n) < 0.5, picked, between)
            if column.dtype.startswith(("int", "uint", "Int", "UInt")):
                values_array = np.round(values_array)
            values = values_array.tolist()
        else:
            values = [None] * n
        if column.null_rate > 0:
            for index in rng.choice(n, size=max(1, n // 20), replace=False):
                values[int(index)] = np.nan if column.kind != "numeric" else None
        columns[column.name] = values
    frame = pd.DataFrame(columns)
    for column in profile.columns:
        if column.kind == "numeric":
            frame[column.name] = pd.to_numeric(frame[column.name], errors="coerce").astype(float)
    return frame
