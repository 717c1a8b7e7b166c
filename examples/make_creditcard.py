"""Write a credit-card-fraud-like data set: Time, V1..V28, Amount, Class (about 1.7 % fraud).

It mimics Kaggle's mlg-ulb/creditcardfraud closely enough to exercise the
whole loop without the network: V1..V28 are decorrelated PCA-like components
with falling variance, fraud shifts a handful of them (V14, V17, V12, V10,
V4, V11 most), some fraud hides among normal rows, Time spans two days and
Amount is log-normal. Deterministic for a seed.

    python examples/make_creditcard.py [--rows N] [--seed S] [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_OUT = Path(__file__).parent / "data" / "creditcardfraud.zip"
# Mean shift of fraud rows, in units of each component's spread.
FRAUD_SHIFTS = {
    14: -2.6,
    17: -2.2,
    12: -2.0,
    10: -1.8,
    4: 1.7,
    11: 1.6,
    3: -1.4,
    16: -1.3,
    7: -1.2,
    2: 1.0,
    9: -1.0,
    18: -0.8,
    1: -0.8,
    5: -0.6,
    6: -0.5,
    21: 0.4,
}
HIDDEN_FRAUD = 0.18  # share of fraud rows that look like normal ones


def make_creditcard(
    n_rows: int = 50_000, positive_rate: float = 0.017, seed: int = 42, concept_shift: float = 0.0
) -> pd.DataFrame:
    """The data set as a frame. ``concept_shift`` moves the fraud pattern (for drift demos)."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(n_rows) < positive_rate
    spread = np.linspace(1.9, 0.3, 28)
    components = rng.standard_normal((n_rows, 28)) * spread
    hidden = fraud & (rng.random(n_rows) < HIDDEN_FRAUD)
    visible = fraud & ~hidden
    strength = rng.uniform(0.4, 1.6, size=n_rows)  # fraud is more or less blatant
    for number, shift in FRAUD_SHIFTS.items():
        column = number - 1
        moved = shift * (1.0 - concept_shift) + (-shift * concept_shift)
        components[visible, column] += moved * spread[column] * strength[visible]
        components[visible, column] += rng.standard_normal(int(visible.sum())) * spread[column]
    frame = pd.DataFrame(components, columns=[f"V{i}" for i in range(1, 29)])
    frame.insert(0, "Time", np.sort(rng.uniform(0, 172_792, n_rows)).round())
    amount = np.where(fraud, rng.lognormal(3.4, 1.6, n_rows), rng.lognormal(3.0, 1.3, n_rows))
    frame["Amount"] = amount.round(2)
    frame["Class"] = fraud.astype(int)
    return frame


def write_zip(frame: pd.DataFrame, path: Path) -> Path:
    """``path``: a zip holding one ``creditcard.csv``, as Kaggle serves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("creditcard.csv", buffer.getvalue())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=50_000, help="rows to write")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="zip file to write")
    args = parser.parse_args()
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    frame = make_creditcard(args.rows, seed=args.seed)
    path = write_zip(frame, args.out)
    positives = int(frame["Class"].sum())
    print(f"wrote {path}: {len(frame)} rows, {positives} fraud ({positives / len(frame):.2%})")


if __name__ == "__main__":
    main()
