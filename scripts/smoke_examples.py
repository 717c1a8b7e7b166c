"""Run every example spec with ``loopml run --smoke`` on small generated data.

CI calls it (through scripts/smoke-examples.sh) so a change that breaks an
example pipeline fails in minutes. Every ``*.json``, ``*.json5``, ``*.yaml``
and ``*.yml`` under examples/ that parses as a spec (has ``pipeline`` and
``experiment_config``) is run, so specs added later are covered without
editing this file. Each spec's loader steps are pointed at generated data
with the spec's target and the columns its parameters name (credit-card
shaped when the target is ``Class``); every other step runs as written. The
rewritten spec sits next to the original for the run (relative paths of
other steps still resolve) and is removed afterwards. All runs share one
process and one fresh home, so imports and MLflow's store are paid once;
they call the engine exactly as ``loopml run --smoke`` does (the CLI flag
itself is tested in tests/reproduce).

    python scripts/smoke_examples.py [--rows N] [--keep HOME]

Exit code 1 when any example fails; prints each example's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SUFFIXES = (".json", ".json5", ".yaml", ".yml")
SMOKE_PREFIX = ".smoke."


def load_document(path: Path) -> Any:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    import json5

    return json5.loads(text)


def example_specs() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.rglob("*")):
        if path.suffix not in SUFFIXES or path.name.startswith(SMOKE_PREFIX):
            continue
        try:
            document = load_document(path)
        except Exception:  # not a spec (a policy, a config): not ours to judge
            continue
        if isinstance(document, dict) and {"pipeline", "experiment_config"} <= set(document):
            found.append((path, document))
    return found


def _named_columns(document: dict[str, Any]) -> dict[str, str]:
    """Columns the spec's feature engineering names, with the kind they must be."""
    kinds = {
        "numeric_features": "numeric",
        "ignore_features": "numeric",
        "categorical_features": "categorical",
        "date_features": "date",
    }
    columns: dict[str, str] = {}
    for group in document.get("pipeline", []):
        for call in group.get("MLSteps", []) if isinstance(group, dict) else []:
            for params in call.values() if isinstance(call, dict) else []:
                engineering = (params or {}).get("feature_engineering_params") or {}
                for key, kind in kinds.items():
                    for column in engineering.get(key) or []:
                        columns[str(column)] = kind
    return columns


def make_data(document: dict[str, Any], rows: int, seed: int = 11) -> pd.DataFrame:
    """Rows with the spec's target and named columns, a learnable signal, both classes."""
    experiment = document["experiment_config"]
    target = str(experiment["target"])
    rng = np.random.default_rng(seed)
    if target == "Class":
        sys.path.insert(0, str(EXAMPLES))
        from make_creditcard import make_creditcard

        frame: pd.DataFrame = make_creditcard(n_rows=rows, seed=seed)
        # enough fraud rows for stratified folds and resamplers on a few hundred rows
        extra = frame["Class"].to_numpy().copy()
        flip = rng.random(rows) < 0.08
        extra[flip] = 1
        frame["Class"] = extra
        frame.loc[flip, "V14"] -= 3.0
    else:
        frame = pd.DataFrame(rng.normal(size=(rows, 6)), columns=[f"x{i}" for i in range(6)])
        signal = frame["x0"] + 0.5 * frame["x1"] + rng.normal(scale=0.5, size=rows)
        if experiment.get("problem_type") == "regression":
            frame[target] = signal * 10 + 50
        else:
            frame[target] = np.where(signal > 0.4, "yes", "no")
    for column, kind in _named_columns(document).items():
        if column in frame.columns:
            continue
        if kind == "categorical":
            frame[column] = rng.choice(["a", "b", "c"], size=rows)
        elif kind == "date":
            start = pd.Timestamp("2026-01-01")
            frame[column] = [start + pd.Timedelta(days=int(d)) for d in rng.integers(0, 365, rows)]
        else:
            frame[column] = rng.normal(size=rows)
    return frame


def smoke_spec(document: dict[str, Any], data: Path) -> dict[str, Any]:
    """The spec with every ``load_data_*`` step reading ``data`` as a file."""
    rewritten = json.loads(json.dumps(document))
    for group in rewritten["pipeline"]:
        calls = group.get("MLSteps", []) if isinstance(group, dict) else []
        for index, call in enumerate(calls):
            name = next(iter(call)) if isinstance(call, dict) and call else ""
            if name.startswith("load_data"):
                frame = (call[name] or {}).get("frame", "train")
                calls[index] = {"load_data_from_file": {"path": str(data), "frame": frame}}
    return rewritten


def run_one(path: Path, document: dict[str, Any], home: Path, rows: int) -> tuple[bool, str]:
    """Run the rewritten spec in this process, as ``loopml run --smoke`` does."""
    from loopml.core.errors import LoopmlError
    from loopml.core.settings import Settings
    from loopml.engine import load_spec, run_pipeline
    from loopml.steps.registry import StepRegistry

    folder = home / "data" / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.csv"
    make_data(document, rows).to_csv(data, index=False)
    spec = path.parent / f"{SMOKE_PREFIX}{path.stem}.json"
    spec.write_text(json.dumps(smoke_spec(document, data), indent=1))
    settings = Settings(home=home)
    registry = StepRegistry.with_builtins()
    try:
        checked = load_spec(spec, registry)
        run = run_pipeline(checked, settings, registry=registry, smoke=True).run
    except LoopmlError as error:
        return False, str(error)
    finally:
        spec.unlink(missing_ok=True)
    if not run.smoke:
        return False, f"run {run.id} is not recorded as a smoke run"
    return run.status == "succeeded", f"run {run.id}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="Rows of generated data per spec.")
    parser.add_argument("--keep", type=Path, help="Use (and keep) this LOOPML_HOME.")
    args = parser.parse_args()
    from loopml.cli import quiet

    quiet.configure(False, terminal=False)  # as `loopml run` without -v: no library chatter
    quiet.quiet_mlflow()
    specs = example_specs()
    if not specs:
        print("no example specs found under examples/", file=sys.stderr)
        return 1
    home = args.keep or Path(tempfile.mkdtemp(prefix="loopml-smoke-"))
    started = time.perf_counter()
    failed = 0
    for path, document in specs:
        began = time.perf_counter()
        ok, detail = run_one(path, document, home, args.rows)
        seconds = time.perf_counter() - began
        label = path.relative_to(ROOT)
        print(f"{'ok  ' if ok else 'FAIL'} {label} ({seconds:.1f} s)", flush=True)
        if not ok:
            failed += 1
            print(f"     {detail}", file=sys.stderr)
    total = time.perf_counter() - started
    print(f"{len(specs) - failed}/{len(specs)} example specs pass --smoke in {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
