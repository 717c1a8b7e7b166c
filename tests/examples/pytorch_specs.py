"""The PyTorch example's specs made small, for the example test and the queue test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import json5

EXAMPLES = Path(__file__).parents[2] / "examples"


def example_specs(folder: Path, data: Path) -> tuple[Path, Path]:
    """The two example specs, made small: one AutoML estimator, two epochs, data in ``folder``."""
    automl = json5.loads((EXAMPLES / "gated_credit_fraud.json").read_text())
    automl["pipeline"][0]["MLSteps"][2]["train_model"]["modeling_params"]["estimator_list"] = ["lr"]
    torch_spec = json5.loads((EXAMPLES / "pytorch_credit_fraud.json").read_text())
    project = torch_spec["pipeline"][0]["MLSteps"][1]["run_mlflow_project"]
    project["uri"] = str(EXAMPLES / "pytorch_tabular")
    project["parameters"]["epochs"] = 2
    for spec in (automl, torch_spec):
        spec["pipeline"][0]["MLSteps"][0]["load_data_from_file"]["path"] = str(data)
    paths = folder / "automl.json", folder / "pytorch.json"
    for path, spec in zip(paths, (automl, torch_spec), strict=True):
        path.write_text(json.dumps(spec))
    return paths


def example_data(folder: Path) -> Path:
    sys.path.insert(0, str(EXAMPLES))
    from make_creditcard import make_creditcard, write_zip

    return write_zip(make_creditcard(600, positive_rate=0.1, seed=3), folder / "cc.zip")
