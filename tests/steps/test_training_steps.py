"""train_model, evaluate_model and register_model through the engine, on real MLflow stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.engine import run_pipeline

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from make_creditcard import make_creditcard, write_zip


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    return write_zip(
        make_creditcard(3000, positive_rate=0.05, seed=5), folder / "creditcardfraud.zip"
    )


def _spec(data: Path, steps: list[dict[str, Any]], model_name: str) -> str:
    return json.dumps(
        {
            "pipeline": [{"MLSteps": [{"load_data_from_file": {"path": str(data)}}, *steps]}],
            "experiment_config": {
                "experiment_name": f"exp-{model_name}",
                "model_name": model_name,
                "main_metric": "F1",
                "problem_type": "classification",
                "target": "Class",
            },
        }
    )


TRAIN = {
    "train_model": {
        "feature_engineering_params": {
            "fix_imbalance": True,
            "pca": True,
            "trigonometry_features": True,
        },
        "modeling_params": {
            "estimator_list": ["dt", "lr", "lightgbm"],
            "fold": 3,
            "n_select": 2,
            "tune": False,
            "ensemble": True,
            "session_id": 1,
        },
        "finalize": False,
    }
}


def _mlflow(settings: Settings) -> Any:
    from loopml.registry.tracking import use_tracking

    return use_tracking(settings)


def test_train_evaluate_register_round_trip(
    data_zip: Path, settings: Settings, request: pytest.FixtureRequest
) -> None:
    name = f"fraud_rt_{request.node.callspec.id}"  # the MLflow store is shared by the session
    spec = _spec(data_zip, [TRAIN, {"evaluate_model": {}}, {"register_model": {}}], name)
    result = run_pipeline(parse_spec(spec), settings)
    context = result.context
    board = context.reports["comparison"]
    assert len(board) == 5  # dt, lr, lightgbm, blend, stack
    assert board["F1"].tolist() == sorted(board["F1"].tolist(), reverse=True)
    assert context.registered is not None
    assert (context.registered.name, context.registered.version) == (name, "1")
    assert context.registered.model_uri == context.trained.model_uri  # type: ignore[union-attr]
    assert result.run.registered == context.registered  # recorded on the run as well
    assert set(context.reports["evaluation"].columns) >= {"F1", "AUC", "Rows"}

    mlflow = _mlflow(settings)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    raw = make_creditcard(20, seed=99).drop(columns=["Class"])
    assert set(model.predict(raw)) <= {0, 1}
    sk_model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    assert sk_model.predict_proba(raw).shape == (20, 2)

    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    version = client.get_model_version_by_alias(name, "challenger")
    assert version.tags["loopml.run_id"] == result.run.id
    assert version.tags["loopml.data_fingerprint"] == result.run.data_fingerprint
    assert version.tags["loopml.spec_hash"] == result.run.spec_hash

    children = mlflow.search_runs(
        experiment_ids=[result.run.mlflow_experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run.mlflow_run_id}'",
    )
    assert len(children) == 5
    lightgbm = children[children["tags.loopml.estimator_id"] == "lightgbm"].iloc[0]
    assert 0 <= lightgbm["metrics.cv_F1_mean"] <= 1
    assert "metrics.holdout_F1" in children.columns and "metrics.fit_time_s" in children.columns
    artifacts = {a.path for a in client.list_artifacts(lightgbm["run_id"], "plots")}
    assert {
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
        "plots/pr_curve.png",
        "plots/feature_importance.png",
    } <= artifacts
    history = client.get_metric_history(lightgbm["run_id"], "cv_F1")
    assert len(history) == 3  # one value per fold
    parent = {a.path for a in client.list_artifacts(result.run.mlflow_run_id)}
    assert {"comparison.csv", "comparison.json"} <= parent

    again = run_pipeline(parse_spec(spec), settings)
    assert again.context.registered is not None and again.context.registered.version == "2"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


def test_without_register_model_nothing_is_registered(data_zip: Path, settings: Settings) -> None:
    mlflow = _mlflow(settings)
    quick = {
        "train_model": {
            "modeling_params": {
                "estimator_list": ["dt", "lr"],
                "fold": 2,
                "n_select": 1,
                "tune": False,
            }
        }
    }
    run_pipeline(parse_spec(_spec(data_zip, [quick], "fraud_none")), settings)
    registered = mlflow.MlflowClient().search_registered_models()
    assert [m.name for m in registered if m.name == "fraud_none"] == []


def test_register_model_without_a_trained_model_says_what_to_do(
    data_zip: Path, settings: Settings
) -> None:
    from loopml.core.errors import SpecError

    with pytest.raises(SpecError) as caught:  # refused by the spec check: nothing runs
        run_pipeline(parse_spec(_spec(data_zip, [{"register_model": {}}], "fraud_x")), settings)
    (issue,) = caught.value.issues
    assert issue.path == "pipeline[0].MLSteps[1].register_model"
    assert "register_model reads trained, which no step before it writes" in issue.message
    assert "train_model" in issue.message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # tuning never reads it here
def test_tuning_trials_are_child_runs_of_the_candidate_and_a_fallback_is_said(
    data_zip: Path, settings: Settings
) -> None:
    name = "fraud_tuned_trials"
    train = {
        "train_model": {
            "modeling_params": {
                "estimator_list": ["dt"],
                "fold": 2,
                "session_id": 1,
                "tune": {
                    "n_iter": 4,
                    "distributed": True,  # on SQLite: threads over a journal file instead
                    "choose_better": False,
                    "custom_grid": {"dt": {"max_depth": {"low": 2, "high": 6}}},
                },
            }
        }
    }
    result = run_pipeline(parse_spec(_spec(data_zip, [train], name)), settings)
    assert any("journal file study instead" in line for line in result.context.warnings)
    client = _mlflow(settings).MlflowClient()
    experiment = client.get_experiment_by_name(f"exp-{name}").experiment_id
    (tuned,) = client.search_runs([experiment], "tags.`loopml.estimator_id` = 'dt_tuned'")
    children = client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{tuned.info.run_id}'", max_results=100
    )
    assert len(children) == int(tuned.data.tags["loopml.tuning_trials"]) >= 4
    assert {c.data.tags["loopml.kind"] for c in children} == {"trial"}
    assert all(0 <= int(c.data.params["max_depth"]) - 2 <= 4 for c in children)
    assert all("cv_F1" in c.data.metrics and "trial_time_s" in c.data.metrics for c in children)
    plots = {a.path for a in client.list_artifacts(tuned.info.run_id, "plots")}
    assert {"plots/tuning_optimization_history.png", "plots/tuning_param_importances.png"} <= plots
