"""The edge scorer (examples/edge/score.py: onnxruntime and numpy only) answers as the registry
model does, on a CSV with missing numbers and categories."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from loopml.core.settings import Settings
from loopml.export.version import export_version
from loopml.registry.reference import ModelReference
from tests.export.pipelines import fitted, frame, target
from tests.export.registry import register_pipeline

SCRIPT = Path(__file__).parents[2] / "examples" / "edge" / "score.py"


def test_edge_scorer_matches_the_registry_model(tmp_path: Path, tracking_uri: str) -> None:
    import mlflow

    from loopml.registry.loading import score

    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    data = frame(300, seed=4)
    y = np.where(target(data, "classification") == 1, "fraud", "ok")
    pipeline = fitted("classification", "lightgbm", data, y, fix_imbalance=True)
    version = register_pipeline(settings, "edge_fraud", pipeline, data)
    onnx_file = tmp_path / "fraud.onnx"
    export_version(settings, ModelReference("edge_fraud", alias=None, version=version), onnx_file)

    rows = frame(40, seed=9)
    rows.loc[3, "shop"] = np.nan
    rows.loc[5, "score"] = np.nan
    rows.loc[7, "shop"] = "unseen-shop"
    rows["extra"] = "ignored"
    csv_file = tmp_path / "rows.csv"
    rows.to_csv(csv_file, index=False)

    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(onnx_file), str(csv_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = list(csv.DictReader(done.stdout.splitlines()))
    assert [int(a["row"]) for a in answers] == list(range(len(rows)))

    model = mlflow.sklearn.load_model(f"models:/edge_fraud/{version}")
    as_read = pd.read_csv(csv_file)  # what the registry model gets from the same file
    expected = score(model, None, ["fraud", "ok"], as_read)
    assert [a["prediction"] for a in answers] == expected.predictions.tolist()
    got = np.array([[float(a["probability_fraud"]), float(a["probability_ok"])] for a in answers])
    assert expected.probabilities is not None
    np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)


def test_edge_scorer_names_missing_columns(tmp_path: Path) -> None:
    from loopml.export.convert import convert_pipeline

    data = frame(120)
    pipeline = fitted("classification", "dt", data, target(data, "classification"))
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(convert_pipeline(pipeline).to_bytes())
    csv_file = tmp_path / "rows.csv"
    data.drop(columns=["shop"]).head(3).to_csv(csv_file, index=False)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(onnx_file), str(csv_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "lacks the model's columns: shop" in done.stderr
