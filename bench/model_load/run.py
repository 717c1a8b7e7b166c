"""Model-load benchmark: what the trust check adds to loading a registered version.

    .venv/bin/python bench/model_load/run.py [--trees 200] [--repeat 5]

Registers one random-forest pipeline through loopml (hash recorded), then loads the same
version, alternating, ``--repeat`` times each way:
- the anchor: MLflow's own ``mlflow.pyfunc.load_model("models:/NAME/VERSION")``, what
  loopml did before (no check);
- ``loopml.lifecycle.load_trusted``: download to a private folder, hash every file, look up
  the store's records, load from that folder (plus the reference profile, thread pinning).
Prints the median of each, the ratio, and the model's size on disk.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from loopml.core.settings import Settings
    from loopml.lifecycle import load_trusted, register
    from loopml.registry.reference import ModelReference
    from loopml.registry.tracking import ensure_experiment, use_tracking

    home = Path(tempfile.mkdtemp(prefix="loopml-bench-load-"))
    settings = Settings(home=home)
    mlflow = use_tracking(settings)
    generator = np.random.default_rng(0)
    frame = pd.DataFrame(generator.normal(size=(5000, 20)), columns=[f"x{i}" for i in range(20)])
    target = (frame["x0"] + frame["x1"] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=args.trees, random_state=0).fit(frame, target)
    with mlflow.start_run(experiment_id=ensure_experiment(settings, "bench")):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=frame.head(2),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    registered, _ = register(settings, info.model_uri, "bench_load", {})
    uri = registered.uri
    ref = ModelReference("bench_load", version=registered.version)
    size = sum(p.stat().st_size for p in (home / "artifacts").rglob("*") if p.is_file())

    anchor: list[float] = []
    trusted: list[float] = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        mlflow.pyfunc.load_model(uri)
        anchor.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_trusted(settings, ref)
        trusted.append(time.perf_counter() - start)
    a, t = statistics.median(anchor), statistics.median(trusted)
    print(f"model: random forest, {args.trees} trees, {size / 1e6:.1f} MB of artifacts")
    print(f"mlflow.pyfunc.load_model (anchor): {a * 1000:8.1f} ms")
    print(f"lifecycle.load_trusted:            {t * 1000:8.1f} ms")
    print(f"ratio trusted / anchor:            {t / a:8.2f}")


if __name__ == "__main__":
    main()
