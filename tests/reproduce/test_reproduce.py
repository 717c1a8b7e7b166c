"""``reproduce``: the seed spec's run comes back metric for metric; changed data is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.core.errors import InputFileError
from loopml.core.settings import Settings
from loopml.engine import load_spec, run_pipeline
from loopml.engine.reproduce import DataChangedError, Reproduction, reproduce_run
from loopml.steps.registry import StepRegistry
from loopml.store import RunStore
from loopml.store.runs import RunView
from tests.reproduce.conftest import seed_spec, write_data


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, tracking_uri: str
) -> Iterator[tuple[Settings, Path, RunView]]:
    """One run of the seed spec on SQLite stores, shared by the module's tests."""
    folder = tmp_path_factory.mktemp("reproduce")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    write_data(folder / "data.csv")
    registry = StepRegistry.with_builtins(plugins=False)
    result = run_pipeline(load_spec(seed_spec(folder), registry), settings, registry=registry)
    yield settings, folder, result.run


@pytest.fixture(scope="module")
def reproduction(world: tuple[Settings, Path, RunView]) -> Reproduction:
    settings, _, run = world
    return reproduce_run(run.id, settings, registry=StepRegistry.with_builtins(plugins=False))


def test_a_run_records_what_reproducing_it_needs(world: tuple[Settings, Path, RunView]) -> None:
    settings, _, run = world
    assert run.seed is not None and run.smoke is False
    assert run.code_hash and len(run.code_hash) == 64
    assert run.environment_hash and len(run.environment_hash) == 64
    detail = run.reproducibility or {}
    assert "loopml/engine/runner.py" in detail["code"]
    assert detail["environment"]["distributions"]["scikit-learn"]
    assert detail["environment"]["python"] and detail["threads"] >= 1
    import mlflow

    mlflow.set_tracking_uri(settings.tracking)
    parent = mlflow.get_run(run.mlflow_run_id)
    assert parent.data.tags["loopml.code_hash"] == run.code_hash
    assert parent.data.tags["loopml.environment_hash"] == run.environment_hash
    assert parent.data.tags["loopml.seed"] == str(run.seed)
    artifacts = {
        item.path for item in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "loopml")
    }
    assert {"loopml/environment.json", "loopml/code.json"} <= artifacts


def test_the_seed_spec_reproduces_exactly(
    world: tuple[Settings, Path, RunView], reproduction: Reproduction
) -> None:
    _, _, run = world
    assert reproduction.run.id != run.id and reproduction.run.status == "succeeded"
    assert reproduction.run.seed == run.seed
    assert reproduction.code_changes == [] and reproduction.environment_changes == []
    compared = [m for m in reproduction.metrics if m.verdict != "timing"]
    # the pipeline run's best_cv_* and both candidates' CV (per fold) and holdout metrics
    assert len(compared) > 20
    assert {m.name.split("/")[0] for m in compared} == {"pipeline", "dt", "lr"}
    assert [m for m in compared if m.verdict != "equal"] == []
    assert reproduction.exact
    assert reproduction.run.reproducibility["reproduces"] == run.id


def test_reproduce_refuses_changed_data_naming_file_and_fingerprints(
    world: tuple[Settings, Path, RunView], reproduction: Reproduction
) -> None:
    settings, folder, run = world
    data = folder / "data.csv"
    snapshot = folder / "snapshot.csv"
    shutil.copy(data, snapshot)
    before = _count_runs(settings)
    write_data(data, seed=8)  # same shape, other values
    registry = StepRegistry.with_builtins(plugins=False)
    with pytest.raises(DataChangedError) as refused:
        reproduce_run(run.id, settings, registry=registry)
    message = str(refused.value)
    assert str(data) in message and run.data_fingerprint in message
    assert reproduction.data_fingerprint not in message.replace(run.data_fingerprint, "")
    assert "fingerprint" in message and "--data" in message
    assert _count_runs(settings) == before  # refused before anything was recorded

    wrong = folder / "other.csv"
    write_data(wrong, seed=9)
    with pytest.raises(DataChangedError, match="snapshot"):
        reproduce_run(run.id, settings, data=wrong, registry=registry)

    for typo in (folder / "gone.csv", folder):  # a typo in --data is bad input: exit code 2
        with pytest.raises(InputFileError) as bad:
            reproduce_run(run.id, settings, data=typo, registry=registry)
        assert bad.value.exit_code == 2 and str(typo) in str(bad.value)
    assert _count_runs(settings) == before

    again = reproduce_run(run.id, settings, data=snapshot, registry=registry)
    assert again.exact and again.data_fingerprint == run.data_fingerprint
    shutil.copy(snapshot, data)


def _count_runs(settings: Settings) -> int:
    store = RunStore(settings.database)
    try:
        return len(store.list_runs(limit=1000))
    finally:
        store.close()


@pytest.fixture
def cli_home(tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with the seed spec and its data, and the CLI's settings pointing at it."""
    from loopml.core.settings import get_settings

    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOOPML_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("LOOPML_DATABASE_URL", f"sqlite:///{tmp_path / 'loopml.db'}")
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    get_settings.cache_clear()
    write_data(tmp_path / "data.csv", seed=3)
    seed_spec(tmp_path)
    yield tmp_path
    get_settings.cache_clear()


def test_cli_smoke_run_reproduces_with_its_profile_and_refuses_changed_data(
    cli_home: Path,
) -> None:
    import json

    from typer.testing import CliRunner

    from loopml.cli.main import app

    runner = CliRunner()
    ran = runner.invoke(app, ["run", "--smoke", "-o", "json", str(cli_home / "seed_spec.json")])
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.stdout)["run"]
    assert run["smoke"] is True and run["seed"] is not None and len(run["code_hash"]) == 64

    again = runner.invoke(app, ["runs", "reproduce", run["run_id"], "-o", "json"])
    assert again.exit_code == 0, again.output
    found = json.loads(again.stdout)
    assert found["exact"] is True and found["smoke"] is True and found["seed"] == run["seed"]
    assert found["counts"]["equal"] > 10 and "different" not in found["counts"]
    assert found["code_changes"] == [] and found["environment_changes"] == []

    shown = runner.invoke(app, ["runs", "show", found["run_id"]])
    assert "code hash" in shown.stdout and "smoke" in shown.stdout

    data = cli_home / "data.csv"
    write_data(data, seed=4)
    refused = runner.invoke(app, ["runs", "reproduce", run["run_id"]])
    assert refused.exit_code != 0
    text = " ".join(refused.output.split())  # Rich wraps long lines
    assert str(data) in text and run["data_fingerprint"] in text
