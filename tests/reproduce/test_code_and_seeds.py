"""The code hash covers plugin steps and folders a step adds; seeds make AutoML repeat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.automl.config import TrainParams
from loopml.automl.run import run_automl
from loopml.core.reproducibility import code_manifest, environment_diff, mapping_diff
from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.engine import run_pipeline
from loopml.steps.registry import StepRegistry
from tests.reproduce import project_step
from tests.reproduce.conftest import write_data


def test_a_step_that_adds_its_folder_is_covered_by_the_code_hash(
    tmp_path: Path, tracking_uri: str
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{tmp_path / 'loopml.db'}",
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text("name: demo\n")
    (project / "train.py").write_text("print('v1')\n")
    write_data(tmp_path / "data.csv", rows=20)
    registry = StepRegistry.with_builtins(plugins=False)
    registry.add("run_project_for_tests", project_step.run_project)
    text = json.dumps(
        {
            "pipeline": [
                {
                    "MLSteps": [
                        {"load_data_from_file": {"path": "data.csv"}},
                        {"run_project_for_tests": {"folder": str(project)}},
                    ]
                }
            ],
            "experiment_config": {
                "experiment_name": "code-hash",
                "model_name": "code-hash",
                "main_metric": "Kappa",
                "problem_type": "classification",
                "target": "Class",
            },
        }
    )

    def run() -> tuple[str, dict[str, str]]:
        spec = parse_spec(text, source=tmp_path / "spec.json")
        found = run_pipeline(spec, settings, registry=registry).run
        detail = found.reproducibility or {}
        assert found.code_hash is not None
        return found.code_hash, detail["code"]

    first_hash, first = run()
    plugin = str(Path(project_step.__file__).resolve())
    assert f"{plugin}::project_step.py" in first  # the plugin step's module
    assert f"{project.resolve()}::train.py" in first  # the folder the step added
    assert any(key.startswith("loopml/engine/") for key in first)
    (project / "train.py").write_text("print('v2')\n")
    second_hash, second = run()
    assert second_hash != first_hash
    assert [c["name"] for c in mapping_diff(first, second)] == [f"{project.resolve()}::train.py"]


def test_code_manifest_and_environment_diff_name_what_changed(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    manifest = code_manifest([tmp_path])
    assert [k for k in manifest if k.startswith(str(tmp_path))] == [f"{tmp_path}::a.py"]
    before = {"python": "3.11.9", "distributions": {"numpy": "2.3.0", "pandas": "3.0.0"}}
    after = {"python": "3.11.9", "distributions": {"numpy": "2.3.1", "scipy": "1.16.0"}}
    assert environment_diff(before, after) == [
        {"name": "numpy", "was": "2.3.0", "now": "2.3.1"},
        {"name": "pandas", "was": "3.0.0", "now": "(absent)"},
        {"name": "scipy", "was": "(absent)", "now": "1.16.0"},
    ]


def _frame(rows: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(rows, 5)), columns=[f"f{i}" for i in range(5)])
    frame["Class"] = ((frame["f0"] + rng.normal(scale=0.7, size=rows)) > 1.0).astype(int)
    return frame


def _automl(seed: int) -> list[tuple[str, list[float], dict[str, float]]]:
    params = TrainParams.model_validate(
        {
            "feature_engineering_params": {"fix_imbalance": True, "fix_imbalance_method": "smote"},
            "modeling_params": {
                "estimator_list": ["lightgbm", "rf"],
                "fold": 2,
                "fold_shuffle": True,
                "n_select": 2,
                "tune": True,
                "n_iter": 2,
                "ensemble": True,
                "session_id": seed,
            },
        },
        context={"problem_type": "classification"},
    )
    result = run_automl(_frame(), "Class", "classification", "Kappa", params, n_jobs=2)
    return [
        (c.id, [float(v) for v in c.oof_scores.ravel()], dict(c.holdout_metrics))
        for c in result.candidates
    ]


@pytest.mark.slow
def test_one_seed_repeats_folds_smote_lightgbm_optuna_and_ensembles_exactly() -> None:
    first, second = _automl(17), _automl(17)
    assert [c[0] for c in first] == [c[0] for c in second]
    assert {"lightgbm", "rf", "blend", "stack"} <= {c[0] for c in first}
    assert first == second  # every out-of-fold score and holdout metric, bit for bit
    assert _automl(18) != first  # the seed is what fixes them
