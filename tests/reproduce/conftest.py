"""A small spec in the seed's shape and data made for it, shared by the module's tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import FIXTURES


def write_data(path: Path, rows: int = 240, seed: int = 7) -> Path:
    """Numeric features and an imbalanced ``Class`` column, like the credit-card data."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["V1", "V2", "V3", "Amount"])
    score = frame["V1"] + 0.5 * frame["V2"] + rng.normal(scale=0.8, size=rows)
    frame["Class"] = (score > 0.9).astype(int)
    frame.to_csv(path, index=False)
    return path


def seed_spec(folder: Path, data: str = "data.csv") -> Path:
    """The seed file spec verbatim but for its data path (dt and lr, fold 2, Kappa)."""
    text = (FIXTURES / "seed_file_spec.json").read_text()
    spec = folder / "seed_spec.json"
    spec.write_text(text.replace("/app/data/creditcardfraud.zip", data))
    return spec


def spec_with(folder: Path, steps: list[dict[str, object]], name: str = "spec.json") -> Path:
    config = {
        "experiment_name": "reproduce-tests",
        "model_name": "reproduce-m",
        "main_metric": "Kappa",
        "problem_type": "classification",
        "target": "Class",
    }
    spec = folder / name
    spec.write_text(json.dumps({"pipeline": [{"MLSteps": steps}], "experiment_config": config}))
    return spec
