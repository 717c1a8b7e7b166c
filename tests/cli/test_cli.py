"""The real `loopml` command, in process and as a subprocess, on real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import Settings
from tests.conftest import FIXTURES

runner = CliRunner()


def _write_spec(folder: Path, steps: list[dict[str, object]], **experiment: str) -> Path:
    (folder / "data.csv").write_text("a,b,Class\n1,2,0\n3,4,1\n5,6,0\n")
    config = {
        "experiment_name": "cli-tests",
        "model_name": "m",
        "main_metric": "F1",
        "problem_type": "classification",
        "target": "Class",
        **experiment,
    }
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"pipeline": [{"MLSteps": steps}], "experiment_config": config}))
    return spec


LOAD = {"load_data_from_file": {"path": "data.csv"}}


def test_validate_accepts_both_seed_specs_verbatim(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(FIXTURES / "seed_kaggle_spec.json")])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    # the file spec names /app/data/creditcardfraud.zip: valid, but the file is not here
    file_spec = FIXTURES / "seed_file_spec.json"
    missing = runner.invoke(app, ["validate", str(file_spec)])
    assert missing.exit_code == 2
    assert "load_data_from_file.path: no such file '/app/data/creditcardfraud.zip'" in (
        missing.output
    )
    (tmp_path / "data.csv").write_text("a,Class\n1,0\n2,1\n")
    spec = tmp_path / "seed.json"
    spec.write_text(file_spec.read_text().replace("/app/data/creditcardfraud.zip", "data.csv"))
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


@pytest.mark.parametrize(
    ("steps", "experiment", "path", "hint"),
    [
        (
            [LOAD, {"trian_model": {}}],
            {},
            "pipeline[0].MLSteps[1].trian_model",
            "did you mean 'train_model'",
        ),
        (
            [{"load_data_from_file": {"pth": "data.csv"}}],
            {},
            "pipeline[0].MLSteps[0].load_data_from_file.pth",
            "did you mean 'path'",
        ),
        (
            [LOAD, {"train_model": {"modeling_params": {"fold": "ten"}}}],
            {},
            "pipeline[0].MLSteps[1].train_model.modeling_params.fold",
            "'ten'",
        ),
        ([LOAD], {"target": "class_"}, "experiment_config.target", "did you mean 'Class'"),
        (
            [LOAD],
            {"problem_type": "regression"},
            "experiment_config.main_metric",
            "allowed: MAE, MSE, RMSE, R2, RMSLE, MAPE",
        ),
    ],
    ids=[
        "unknown-step",
        "misspelt-parameter",
        "mistyped-parameter",
        "missing-target",
        "metric-of-wrong-problem",
    ],
)
def test_each_kind_of_spec_error_names_path_and_fix(
    tmp_path: Path,
    steps: list[dict[str, object]],
    experiment: dict[str, str],
    path: str,
    hint: str,
    loopml_env: Settings,
) -> None:
    spec = _write_spec(tmp_path, steps, **experiment)
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(spec)])
        assert result.exit_code == 2, result.output
        assert path in result.output and hint in result.output, result.output
    assert not loopml_env.home.exists()  # nothing written anywhere


def test_all_errors_of_a_spec_come_at_once(tmp_path: Path) -> None:
    spec = _write_spec(
        tmp_path,
        [{"load_data_from_file": {"path": "data.csv", "fromat": "csv"}}, {"trian_model": {}}],
        target="class",
        main_metric="F2",
    )
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "3 problems" in result.output
    for path in (
        "load_data_from_file.fromat",
        "MLSteps[1].trian_model",
        "experiment_config.main_metric",
    ):
        assert path in result.output


def test_run_list_show_and_resume(tmp_path: Path, loopml_env: Settings) -> None:
    spec = _write_spec(tmp_path, [LOAD])
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output

    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0 and "cli-tests" in listed.output
    from loopml.store import RunStore

    store = RunStore(loopml_env.database)
    (run,) = store.list_runs()
    store.close()
    shown = runner.invoke(app, ["runs", "show", run.id[:8], "--spec"])
    assert shown.exit_code == 0, shown.output
    assert "load_data_from_file" in shown.output and "data/train" in shown.output
    assert "data.csv" in shown.output

    again = runner.invoke(app, ["runs", "resume", run.id])
    assert again.exit_code == 1 and "already succeeded" in again.output
    missing = runner.invoke(app, ["runs", "show", "0123456789"])
    assert missing.exit_code == 2 and "runs list" in missing.output


def test_a_failing_step_exits_non_zero_and_can_be_inspected(
    tmp_path: Path, loopml_env: Settings
) -> None:
    spec = _write_spec(
        tmp_path, [LOAD, {"load_data_from_file": {"path": "gone.csv", "frame": "other"}}]
    )
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 1
    assert "step 1 (load_data_from_file) failed" in result.output
    assert "gone.csv" in result.output
    failed = runner.invoke(app, ["runs", "list", "--status", "failed"])
    assert "failed" in failed.output


def test_steps_list_shows_builtins() -> None:
    result = runner.invoke(app, ["steps", "list"])
    assert result.exit_code == 0
    for name in (
        "load_data_from_file",
        "load_data_from_sql",
        "load_data_from_kaggle",
        "train_model",
        "register_model",
    ):
        assert name in result.output


def test_the_installed_command_runs_as_a_subprocess(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path, [LOAD], target="Clas")
    env = {**os.environ, "LOOPML_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "loopml", "validate", str(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "experiment_config.target" in result.stderr and "'Class'" in result.stderr
