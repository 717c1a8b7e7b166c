"""Drift benchmark: loopml vs Evidently's DataDriftPreset on the same data, in the same run.

    .venv/bin/python bench/drift/run.py [--rows 500000] [--skip-evidently]

Data: a reference and a current table of ``--rows`` rows each, 20 columns (14
numeric of several shapes, 6 categorical), written to Parquet; drift is
injected into known columns, and one column gets a shift too small to matter
(which a plain KS test would still call significant at this size).

- loopml: sketches the reference (in memory), then streams the current table
  from Parquet in 100,000-row batches, as the monitor does with the log.
- Evidently 0.7 (Apache-2.0) runs in its own virtual environment
  (bench/.venvs/evidently, created on first use with uv from
  evidently-constraints.txt) on the same files, column types given.
- scipy: an exact one-shot pass (Wasserstein on the full columns,
  Jensen-Shannon on value counts), the anchor for speed and for accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV = ROOT / "bench" / ".venvs" / "evidently"
NUMERIC = [f"n{i}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
DRIFTED = {"n0", "n1", "n5", "n9", "c0", "c3"}
NOISE = "n3"  # shifted by 0.02 standard deviations: real, but meaningless


def make_data(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i, name in enumerate(NUMERIC):
        shape = i % 5
        if shape == 0:
            values = rng.normal(50, 10, rows)
        elif shape == 1:
            values = rng.lognormal(3, 0.6, rows)
        elif shape == 2:
            values = rng.uniform(-1, 1, rows)
        elif shape == 3:
            values = rng.exponential(5, rows)
        else:
            values = rng.integers(0, 500, rows).astype(np.float64)
        columns[name] = values
    for i, name in enumerate(CATEGORICAL):
        levels = [f"{name}_{k}" for k in range(3 + 3 * i)]
        weights = np.linspace(1, 2, len(levels))
        columns[name] = rng.choice(levels, rows, p=weights / weights.sum())
    frame = pd.DataFrame(columns)
    if drift:
        frame["n0"] = frame["n0"] + 3.0  # 0.3 sd
        frame["n1"] = frame["n1"] * 1.4
        frame["n5"] = frame["n5"] + 2.0  # 0.2 sd
        frame["n9"] = rng.integers(100, 600, rows).astype(np.float64)
        frame[NOISE] = frame[NOISE] + 0.02 * frame[NOISE].std()
        levels = [f"c0_{k}" for k in range(3)]
        frame["c0"] = rng.choice(levels, rows, p=[0.6, 0.3, 0.1])
        new = rng.random(rows) < 0.25
        frame.loc[new, "c3"] = "c3_new"
    return frame


def run_loopml(reference_path: Path, current_path: Path) -> dict[str, object]:
    from loopml.monitoring import Reference, WindowTally

    started = time.perf_counter()
    reference = Reference.from_frame(pd.read_parquet(reference_path))
    sketched = time.perf_counter() - started
    window = WindowTally(reference, classification=True)
    for batch in pq.ParquetFile(current_path).iter_batches(batch_size=100_000):
        window.update(batch.to_pandas())
    result = window.result(0, complete=True)
    total = time.perf_counter() - started
    return {
        "total_s": total,
        "reference_s": sketched,
        "columns": {
            c.column: {
                "method": c.method,
                "score": c.score,
                "drifted": c.drifted,
                "bound": c.error_bound,
            }
            for c in result.drift
        },
    }


def run_scipy(reference_path: Path, current_path: Path) -> dict[str, object]:
    from scipy import stats
    from scipy.spatial import distance

    started = time.perf_counter()
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    columns = {}
    for name in NUMERIC:
        ref, cur = reference[name].to_numpy(), current[name].to_numpy()
        if np.unique(ref).size <= 5:
            continue
        score = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
        columns[name] = {"score": score, "drifted": score >= 0.1}
    for name in CATEGORICAL:
        ref_counts = reference[name].value_counts(normalize=True)
        cur_counts = current[name].value_counts(normalize=True)
        keys = sorted(set(ref_counts.index) | set(cur_counts.index))
        score = float(
            distance.jensenshannon(
                ref_counts.reindex(keys, fill_value=0), cur_counts.reindex(keys, fill_value=0)
            )
        )
        columns[name] = {"score": score, "drifted": score >= 0.1}
    return {"total_s": time.perf_counter() - started, "columns": columns}


def evidently_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} (Evidently, pinned by evidently-constraints.txt)", flush=True)
        subprocess.run(["uv", "venv", "--quiet", "--python", "3.11", str(VENV)], check=True)
        subprocess.run(
            [
                "uv",
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                "-r",
                str(HERE / "evidently-constraints.txt"),
            ],
            check=True,
        )
    return python


def run_evidently(reference_path: Path, current_path: Path) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(evidently_python()),
            str(HERE / "evidently_job.py"),
            str(reference_path),
            str(current_path),
            ",".join(NUMERIC),
            ",".join(CATEGORICAL),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise SystemExit(f"Evidently job failed:\n{done.stderr[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def flagged(result: dict[str, object]) -> set[str]:
    columns = result["columns"]
    assert isinstance(columns, dict)
    return {name for name, column in columns.items() if column["drifted"]}


def main() -> None:
    parser = argparse.ArgumentParser(description="loopml vs Evidently drift benchmark")
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-drift-") as folder:
        reference_path, current_path = (
            Path(folder) / "reference.parquet",
            Path(folder) / "current.parquet",
        )
        make_data(args.rows, 1, False).to_parquet(reference_path)
        make_data(args.rows, 2, True).to_parquet(current_path)
        print(
            f"data: reference and current, {args.rows} rows x 20 columns each; "
            f"cores {os.cpu_count()}"
        )
        print(f"injected drift: {sorted(DRIFTED)}; meaningless shift: {NOISE}", flush=True)
        ours = run_loopml(reference_path, current_path)
        print(
            f"loopml:    {ours['total_s']:.2f} s (reference sketch {ours['reference_s']:.2f} s), "
            f"flags {sorted(flagged(ours))}",
            flush=True,
        )
        exact = run_scipy(reference_path, current_path)
        print(
            f"scipy:     {exact['total_s']:.2f} s (exact one-shot), flags {sorted(flagged(exact))}"
        )
        ours_columns, exact_columns = ours["columns"], exact["columns"]
        assert isinstance(ours_columns, dict) and isinstance(exact_columns, dict)
        gaps = [abs(ours_columns[n]["score"] - exact_columns[n]["score"]) for n in exact_columns]
        bounds = [ours_columns[n]["bound"] for n in exact_columns]
        print(
            f"           largest |loopml - exact| score gap {max(gaps):.2e} "
            f"(largest stated bound {max(bounds):.2e})"
        )
        if args.skip_evidently:
            return
        theirs = run_evidently(reference_path, current_path)
        total = float(theirs["read_s"]) + float(theirs["compute_s"])  # type: ignore[arg-type]
        print(
            f"evidently: {total:.2f} s (read {theirs['read_s']:.2f} s + DataDriftPreset "
            f"{theirs['compute_s']:.2f} s; process {theirs['process_s']:.2f} s), "
            f"flags {sorted(flagged(theirs))}"
        )
        print(f"ratio evidently/loopml: {total / float(ours['total_s']):.1f}x")  # type: ignore[arg-type]
        same = flagged(ours) == flagged(theirs)
        print(
            f"same columns flagged: {same}"
            + (
                ""
                if same
                else f" (only loopml {sorted(flagged(ours) - flagged(theirs))}, "
                f"only evidently {sorted(flagged(theirs) - flagged(ours))})"
            )
        )
        print(
            f"flags match the injected drift: loopml {flagged(ours) == DRIFTED}, "
            f"evidently {flagged(theirs) == DRIFTED}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
