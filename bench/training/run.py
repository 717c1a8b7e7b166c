"""Training benchmark: loopml vs PyCaret 3.3.2 on the seed's first pipeline, same data, one run.

    .venv/bin/python bench/training/run.py [--rows 50000] [--fold 10] [--skip-pycaret]

Both sides: estimators rf, lightgbm, knn; fold 10; SMOTE (fix_imbalance); PCA;
the two best blended and stacked; train_size 0.7; the best model by CV F1.
PyCaret 3 dropped ``trigonometry_features``, so neither side uses it here.
loopml's time includes MLflow tracking of every candidate (PyCaret logs
nothing here), so the comparison leans in PyCaret's favour.
PyCaret runs in its own virtual environment (bench/.venvs/pycaret), created
on first use from pycaret-constraints.txt with uv.
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

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV = ROOT / "bench" / ".venvs" / "pycaret"
SEED = 123


def make_data(rows: int, folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "examples"))
    from make_creditcard import make_creditcard, write_zip

    return write_zip(make_creditcard(rows), folder / "creditcardfraud.zip")


def spec_text(data: Path, fold: int) -> str:
    return json.dumps(
        {
            "pipeline": [
                {
                    "MLSteps": [
                        {"load_data_from_file": {"path": str(data)}},
                        {
                            "train_model": {
                                "feature_engineering_params": {"fix_imbalance": True, "pca": True},
                                "modeling_params": {
                                    "estimator_list": ["rf", "lightgbm", "knn"],
                                    "fold": fold,
                                    "n_select": 2,
                                    "tune": False,
                                    "ensemble": True,
                                    "session_id": SEED,
                                },
                                "finalize": False,
                            }
                        },
                    ]
                }
            ],
            "experiment_config": {
                "experiment_name": "bench_training",
                "model_name": "bench",
                "main_metric": "F1",
                "problem_type": "classification",
                "target": "Class",
            },
        }
    )


def run_loopml(data: Path, fold: int, home: Path) -> dict[str, object]:
    """The whole pipeline through the engine, as `loopml run` does it."""
    from loopml.core.settings import Settings
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline

    settings = Settings(home=home)
    started = time.perf_counter()
    result = run_pipeline(parse_spec(spec_text(data, fold)), settings)
    wall = time.perf_counter() - started
    board = result.context.reports["comparison"]
    return {
        "wall_s": wall,
        "train_s": result.context.values["train_seconds"],
        "best_model": str(board.iloc[0]["Model"]),
        "cv_f1": float(board.iloc[0]["F1"]),
        "scores": dict(zip(board["Model"], board["F1"], strict=True)),
    }


def pycaret_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} (PyCaret 3.3.2, pinned by pycaret-constraints.txt)", flush=True)
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
                str(HERE / "pycaret-constraints.txt"),
            ],
            check=True,
        )
    return python


def run_pycaret(data: Path, fold: int) -> dict[str, object]:
    python = pycaret_python()
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(python),
            str(HERE / "pycaret_job.py"),
            str(data),
            "--fold",
            str(fold),
            "--seed",
            str(SEED),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise SystemExit(f"PyCaret job failed:\n{done.stderr[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="loopml vs PyCaret training benchmark")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--fold", type=int, default=10)
    parser.add_argument("--skip-pycaret", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-") as folder:
        data = make_data(args.rows, Path(folder))
        print(f"data: {args.rows} rows, fold {args.fold}, cores {os.cpu_count()}", flush=True)
        ours = run_loopml(data, args.fold, Path(folder) / "home")
        print(f"loopml: {json.dumps(ours)}", flush=True)
        theirs = None if args.skip_pycaret else run_pycaret(data, args.fold)
        if theirs is not None:
            print(f"pycaret: {json.dumps(theirs)}", flush=True)
    print()
    print(f"{'side':<10}{'wall s':>10}{'CV F1':>9}  best model")
    print(f"{'loopml':<10}{ours['wall_s']:>10.1f}{ours['cv_f1']:>9.4f}  {ours['best_model']}")
    if theirs is not None:
        print(
            f"{'pycaret':<10}{theirs['wall_s']:>10.1f}{theirs['cv_f1']:>9.4f}  "
            f"{theirs['best_model']}"
        )
        ratio = float(theirs["wall_s"]) / float(ours["wall_s"])  # type: ignore[arg-type]
        delta = float(ours["cv_f1"]) - float(theirs["cv_f1"])  # type: ignore[arg-type]
        print(
            f"\nspeed-up (PyCaret wall / loopml wall): {ratio:.2f}x; "
            f"CV F1 loopml - PyCaret: {delta:+.4f}"
        )


if __name__ == "__main__":
    main()
