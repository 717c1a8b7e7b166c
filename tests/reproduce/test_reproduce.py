"""``reproduce``: the seed spec's run comes back metric for metric; changed data is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

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

    again = reproduce_run(run.id, settings, data=snapshot, registry=registry)
    assert again.exact and again.data_fingerprint == run.data_fingerprint
    shutil.copy(snapshot, data)


def _count_runs(settings: Settings) -> int:
    store = RunStore(settings.database)
    try:
        return len(store.list_runs(limit=1000))
    finally:
        store.close()
