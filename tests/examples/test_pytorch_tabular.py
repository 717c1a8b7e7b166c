"""The PyTorch example end to end: an MLflow Project's MLP gated against the AutoML champion,
registered, served over real HTTP, every prediction in the log; and the same spec on a worker.

One AutoML run and one project run (2 epochs, 600 rows) for the whole module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from loopml.core.settings import Settings
from tests.examples.pytorch_specs import example_data, example_specs
from tests.serving.conftest import live_server, sample_rows, wait_for

pytest.importorskip("torch", reason="the torch extra: pip install 'loopml[torch]'")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "credit_fraud_gated"  # the examples' name: the project gates against AutoML's champion


@dataclass(frozen=True)
class Loop:
    settings: Settings
    automl: Any
    project: Any


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Loop:
    from loopml.engine import load_spec, run_pipeline
    from loopml.steps.registry import StepRegistry

    folder = tmp_path_factory.mktemp("pytorch-example")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,  # the session's store (its schema takes seconds)
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
        serve_watch_interval_s=0.5,
        serve_log_flush_s=0.05,
    )
    automl_spec, torch_spec = example_specs(folder, example_data(folder))
    registry = StepRegistry.with_builtins()
    automl = run_pipeline(load_spec(automl_spec, registry), settings)
    project = run_pipeline(load_spec(torch_spec, registry), settings)
    return Loop(settings, automl, project)


def test_the_project_model_is_gated_against_the_automl_champion_on_the_same_holdout(
    loop: Loop,
) -> None:
    automl, project = loop.automl.context, loop.project.context
    assert automl.gate.decision == "promoted" and automl.registered.version == "1"
    gate = project.gate
    assert gate.champion_version == "1" and gate.challenger_version == "2"
    assert gate.champion_score is not None
    # the same rows: both split with the examples' session_id and train_size
    assert project.data["holdout"].equals(automl.data["holdout"])
    assert gate.rows == len(automl.data["holdout"]) == project.evaluation.rows
    assert gate.challenger_score == pytest.approx(project.evaluation.metrics["F1"])
    assert gate.decision in ("promoted", "refused")
    assert project.trained.estimator.startswith("mlflow project")


def test_the_project_ran_as_a_child_of_the_pipeline_run_in_loopmls_store(loop: Loop) -> None:
    from loopml.registry.tracking import use_tracking

    context = loop.project.context
    client = use_tracking(loop.settings).MlflowClient()
    child = client.get_run(context.trained.mlflow_run_id)
    assert child.data.tags["mlflow.parentRunId"] == context.mlflow_run_id
    assert child.info.status == "FINISHED"
    assert child.data.params["epochs"] == "2"
    assert "holdout_F1" in child.data.metrics and "train_loss" in child.data.metrics
    logged = [item.path for item in client.list_artifacts(child.info.run_id, "project")]
    assert logged == ["project/project.log"]


def test_the_registered_version_loads_trusted_with_profile_and_probabilities(loop: Loop) -> None:
    from loopml.lifecycle import load_trusted
    from loopml.registry.reference import ModelReference

    loaded = load_trusted(loop.settings, ModelReference(MODEL, version="2"))
    assert loaded.flavor == "python_function" and loaded.classes == [0, 1]
    assert loaded.trust.basis.startswith("registered through loopml")
    assert loaded.profile is not None and loaded.profile.rows == 420  # the training split
    holdout = loop.project.context.data["holdout"]
    scores = loaded.score(holdout.drop(columns=["Class"]))
    assert set(scores.predictions.tolist()) <= {0, 1}
    assert scores.probabilities is not None and scores.probabilities.shape == (len(holdout), 2)
    assert scores.probabilities.sum(axis=1) == pytest.approx(1.0, abs=1e-5)


def test_the_project_model_is_served_and_every_prediction_logged(loop: Loop) -> None:
    from loopml.store.predictions import PredictionLog

    rows = sample_rows(4)
    with live_server(loop.settings, f"{MODEL}@challenger") as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.post("/predict", json=rows)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["model"] == {"name": MODEL, "version": "2"}
            predictions = body["predictions"]
            assert len(predictions) == 4
            assert all(p["prediction"] in (0, 1) for p in predictions)
            assert all(sum(p["probabilities"].values()) == pytest.approx(1) for p in predictions)
            meta = client.get("/metadata").json()["model"]
            assert meta["flavor"] == "python_function" and meta["classes"] == [0, 1]
            bad = client.post("/predict", json={"V1": "not a number"})
            assert bad.status_code == 422
            mlflow_protocol = client.post("/invocations", json={"dataframe_records": rows[:2]})
            assert mlflow_protocol.status_code == 200, mlflow_protocol.text
        log = PredictionLog.open(loop.settings.database)
        ids = [p["id"] for p in predictions]
        wait_for(lambda: all(log.exists(i) for i in ids))
    logged = next(log.frames(MODEL)).set_index("prediction_id").loc[ids[0]]
    assert logged["model_version"] == "2"
    assert set(logged["probabilities"]) == {"0", "1"}
    assert logged["V14"] == pytest.approx(rows[0]["V14"])


def test_batch_scoring_checks_scores_and_logs_the_project_model(loop: Loop) -> None:
    from loopml.batch.models import load_model
    from loopml.batch.scoring import batch_id, score_and_log
    from loopml.registry.reference import ModelReference
    from loopml.store.batchlog import BatchLog, root_of
    from loopml.store.db import connect
    from loopml.store.predictions import PredictionLog

    settings = loop.settings
    model = load_model(settings, ModelReference(MODEL, version="2"))
    frame = loop.project.context.data["holdout"].drop(columns=["Class"]).head(20)
    log = BatchLog(connect(settings.database), root_of(settings.artifacts, settings.home))
    chunk = batch_id("pytorch-batch", 0)
    scored = score_and_log(model, frame.reset_index(drop=True), chunk, log)
    assert list(scored.columns) == ["prediction", "probability_0", "probability_1"]
    assert set(scored["prediction"].tolist()) <= {0, 1}
    # counted in the one prediction log readers see (the chunk's Parquet segment)
    assert PredictionLog.open(settings.database).count(batch_id=chunk) == 20


def test_without_torch_the_load_error_names_the_extra(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from loopml.core.errors import ModelLoadError
    from loopml.lifecycle import load_trusted
    from loopml.registry.reference import ModelReference

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails, as without it
    with pytest.raises(ModelLoadError, match=r"needs the Python package 'torch'.*loopml\[torch\]"):
        load_trusted(loop.settings, ModelReference(MODEL, version="2"))
