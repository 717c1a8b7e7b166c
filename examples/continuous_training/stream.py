"""A labelled stream with a known concept drift, for the continuous-training demo.

Loan-like rows: ``income``, ``debt``, ``age``, ``tenure`` and a ``region``.
Before the drift point the label follows one rule; from it on, the rule
changes (concept drift: debt stops mattering, tenure starts to) and
``income`` moves up (covariate shift), so both the drift monitor and the
feedback labels can see it. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIONS = ("north", "south", "east", "west")
TARGET = "default"


def make_rows(rows: int, *, drifted: bool, seed: int) -> pd.DataFrame:
    """``rows`` labelled rows, before (``drifted=False``) or after the drift point."""
    rng = np.random.default_rng(seed)
    income = rng.normal(3.0 + (1.2 if drifted else 0.0), 1.0, rows)
    debt = rng.normal(0.0, 1.0, rows)
    age = rng.normal(40.0, 10.0, rows)
    tenure = rng.normal(0.0, 1.0, rows)
    region = rng.choice(REGIONS, rows)
    noise = rng.normal(0.0, 0.35, rows)
    if drifted:
        score = -0.9 * (income - 4.2) + 1.6 * tenure + noise
    else:
        score = -0.9 * (income - 3.0) + 1.6 * debt + noise
    return pd.DataFrame(
        {
            "income": income.round(3),
            "debt": debt.round(3),
            "age": age.round(1),
            "tenure": tenure.round(3),
            "region": region,
            TARGET: (score > 0).astype(int),
        }
    )


def window(index: int, rows: int, *, drift_at: int, seed: int = 7) -> pd.DataFrame:
    """Window ``index`` of the stream; windows from ``drift_at`` on come after the drift."""
    return make_rows(rows, drifted=index >= drift_at, seed=seed * 1_000 + index)
