"""``--smoke`` runs the same steps fast and never moves an alias; ``models compare`` reads
two versions the gate's way. One gated spec runs twice (normal, then smoke) for the module."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import Settings, get_settings
from loopml.engine import load_spec, run_pipeline
from loopml.registry.models import get_version, version_for_alias
from loopml.steps.registry import StepRegistry
from loopml.store.runs import RunView
from tests.reproduce.conftest import spec_with, write_data

runner = CliRunner()


@dataclass(frozen=True)
class World:
    settings: Settings
    folder: Path
    model: str
    normal: RunView
    smoke: RunView


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("smoke")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    write_data(folder / "data.csv")
    model = f"smoke-{uuid.uuid4().hex[:8]}"
    train = {
        "modeling_params": {
            "estimator_list": ["dt", "rf"],
            "fold": 3,
            "n_select": 1,
            "tune": True,
            "n_iter": 2,
        }
    }
    steps = [
        {"load_data_from_file": {"path": "data.csv"}},
        {"train_model": train},
        {"validate_model": {"model_name": model}},
        {"register_model": {"model_name": model}},
    ]
    registry = StepRegistry.with_builtins(plugins=False)
    checked = load_spec(spec_with(folder, steps), registry)
    normal = run_pipeline(checked, settings, registry=registry).run
    smoke = run_pipeline(checked, settings, registry=registry, smoke=True).run
    yield World(settings, folder, model, normal, smoke)


def test_a_smoke_run_is_recorded_as_one_and_uses_the_fast_profile(world: World) -> None:
    assert world.smoke.smoke is True and world.normal.smoke is False
    assert world.smoke.spec_hash == world.normal.spec_hash  # the same spec
    assert [s.name for s in world.smoke.steps] == [s.name for s in world.normal.steps]
    mlflow.set_tracking_uri(world.settings.tracking)
    client = mlflow.MlflowClient()
    assert client.get_run(world.smoke.mlflow_run_id).data.tags["loopml.smoke"] == "true"
    assert client.get_run(world.normal.mlflow_run_id).data.tags["loopml.smoke"] == "false"

    def candidates(run: RunView) -> dict[str, mlflow.entities.Run]:
        found = client.search_runs(
            [run.mlflow_experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run.mlflow_run_id}'",
        )
        return {item.data.tags["loopml.estimator_id"]: item for item in found}

    normal, smoke = candidates(world.normal), candidates(world.smoke)
    assert "rf_tuned" in normal or normal["rf"].data.params  # tuning ran (kept or not)
    assert not any(key.endswith("_tuned") for key in smoke)  # no tuning in a smoke run
    assert smoke["rf"].data.params["n_estimators"] == "10"
    assert normal["rf"].data.params["n_estimators"] == "100"
    folds = client.get_metric_history(smoke["dt"].info.run_id, "cv_Kappa")
    assert sorted(point.step for point in folds) == [0, 1]  # fold 2
    assert len(client.get_metric_history(normal["dt"].info.run_id, "cv_Kappa")) == 3


def test_a_smoke_run_registers_a_tagged_version_and_moves_no_alias(world: World) -> None:
    settings = world.settings
    assert world.normal.registered is not None and world.smoke.registered is not None
    first, second = world.normal.registered.version, world.smoke.registered.version
    assert version_for_alias(settings, world.model, "champion") == first
    version = get_version(settings, world.model, second)
    assert version.tags["loopml.smoke"] == "true"
    assert version.aliases == ()
    gate = world.smoke.gate
    assert gate is not None and gate.decision == "held"
    assert "smoke run" in gate.reason and "no alias moves" in gate.reason


@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("LOOPML_HOME", str(world.settings.home))
    monkeypatch.setenv("LOOPML_TRACKING_URI", world.settings.tracking)
    monkeypatch.setenv("LOOPML_DATABASE_URL", world.settings.database)
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", world.settings.artifacts)
    get_settings.cache_clear()
    yield world
    get_settings.cache_clear()


def test_models_compare_scores_both_versions_with_the_gates_logic(cli_env: World) -> None:
    world = cli_env
    data = world.folder / "fresh.csv"
    write_data(data, rows=150, seed=21)
    done = runner.invoke(
        app, ["models", "compare", world.model, "1", "2", "--data", str(data), "-o", "json"]
    )
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert (found["v1"], found["v2"], found["rows"]) == ("1", "2", 150)
    assert found["main_metric"] == "Kappa" and found["target"] == "Class"
    metrics = {row["metric"]: row for row in found["metrics"]}
    assert {"Accuracy", "AUC", "F1", "Kappa"} <= set(metrics)
    kappa = metrics["Kappa"]
    assert kappa["v1"] is not None and kappa["v2"] is not None
    expected = (
        "tie" if kappa["v1"] == kappa["v2"] else ("v2" if kappa["v2"] > kappa["v1"] else "v1")
    )
    assert found["winner"] == kappa["better"] == expected
    assert found["gate_would_promote_v2"] == (expected == "v2")  # min_delta 0, no threshold

    table = runner.invoke(app, ["models", "compare", world.model, "1", "2", "--data", str(data)])
    assert table.exit_code == 0 and "Kappa" in table.stdout and "the gate would" in table.stdout


def test_models_compare_refuses_unknown_versions_and_unlabelled_rows(cli_env: World) -> None:
    world = cli_env
    data = world.folder / "fresh.csv"
    write_data(data, rows=50, seed=22)
    unknown = runner.invoke(app, ["models", "compare", world.model, "1", "9", "--data", str(data)])
    assert unknown.exit_code != 0
    assert "no version 9" in unknown.output and "its versions: 2, 1" in unknown.output
    unlabelled = world.folder / "unlabelled.csv"
    pd.read_csv(data).drop(columns=["Class"]).to_csv(unlabelled, index=False)
    missing = runner.invoke(
        app, ["models", "compare", world.model, "1", "2", "--data", str(unlabelled)]
    )
    assert missing.exit_code != 0
    assert "no target column 'Class'" in missing.output and "--target" in missing.output
