"""validate_data and validate_model through the engine, on real MLflow and metadata stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from loopml.core.context import DataValidation
from loopml.core.errors import SkewError, StepError
from loopml.core.profile import ReferenceProfile
from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.engine import PipelineResult, run_pipeline
from loopml.lifecycle import approve, history, rollback
from loopml.registry.models import (
    APPROVAL_TAG,
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    get_version,
    reference_profile,
    version_for_alias,
)
from loopml.store import RunStore

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from make_creditcard import make_creditcard, write_zip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gate-data")
    clean = make_creditcard(1500, positive_rate=0.06, seed=5)
    skewed = make_creditcard(1500, positive_rate=0.06, seed=6)
    skewed = skewed.drop(columns=["V1"])
    skewed["V2"] = skewed["V2"].round(2).astype(str) + "x"
    skewed["coupon"] = 1
    skewed.loc[:299, "Amount"] = 1e7
    skewed.loc[:599, "V3"] = None
    skewed["V4"] = (skewed["V4"] + 2.5).clip(upper=clean["V4"].max())
    return {
        "clean": write_zip(clean, folder / "clean.zip"),
        "skewed": write_zip(skewed, folder / "skewed.zip"),
        "no_v1": write_zip(clean.drop(columns=["V1"]), folder / "no_v1.zip"),
    }


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


def _train(estimator: str) -> dict[str, Any]:
    return {
        "train_model": {
            "modeling_params": {
                "estimator_list": [estimator],
                "fold": 2,
                "n_select": 1,
                "tune": False,
                "session_id": 3,
            }
        }
    }


def _run(settings: Settings, data: Path, steps: list[dict[str, Any]], name: str) -> PipelineResult:
    return run_pipeline(parse_spec(_spec(data, steps, name)), settings)


def _validation(result: PipelineResult) -> DataValidation:
    found = result.context.data_validation
    assert found is not None
    return found


def _name(prefix: str, request: pytest.FixtureRequest) -> str:
    return f"{prefix}_{request.node.callspec.id}"  # the MLflow store is shared by the session


def test_the_gate_promotes_a_better_challenger_and_refuses_a_worse_one(
    data: dict[str, Path], settings: Settings, request: pytest.FixtureRequest
) -> None:
    name = _name("gated", request)
    gate = {"validate_model": {"min_delta": 0.05}}
    first = _run(settings, data["clean"], [_train("dummy"), gate], name)
    assert first.context.gate.decision == "promoted"  # no champion yet
    assert version_for_alias(settings, name, CHAMPION) == "1"

    better = _run(settings, data["clean"], [_train("lr"), gate], name)
    record = better.context.gate
    assert record is not None
    assert record.decision == "promoted", record.reason
    assert (record.challenger_version, record.champion_version) == ("2", "1")
    assert record.champion_score is not None
    assert record.challenger_score > record.champion_score + 0.05
    assert version_for_alias(settings, name, CHAMPION) == "2"
    assert version_for_alias(settings, name, PREVIOUS) == "1"

    # Both figures come from the same holdout: scoring each version on it again gives them.
    from loopml.registry.tracking import use_tracking
    from loopml.steps.evaluate import score_frame

    mlflow = use_tracking(settings)
    holdout = better.context.data["holdout"]
    assert record.rows == len(holdout)
    for version, score in (("2", record.challenger_score), ("1", record.champion_score)):
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        metrics = score_frame(model, holdout, "Class", "classification")[3]
        assert metrics["F1"] == pytest.approx(score)

    # The decision and figures are on the run: metadata store and MLflow parent run.
    store = RunStore(settings.database)
    stored = store.get_run(better.run.id).values
    store.close()
    assert stored["gate"]["decision"] == "promoted"
    assert (stored["registered"]["name"], stored["registered"]["version"]) == (name, "2")
    parent = mlflow.get_run(better.run.mlflow_run_id)
    assert parent.data.metrics["gate_challenger_F1"] == pytest.approx(record.challenger_score)
    assert parent.data.metrics["gate_champion_F1"] == pytest.approx(record.champion_score)
    assert parent.data.tags["loopml.gate.decision"] == "promoted"

    worse = _run(settings, data["clean"], [_train("dummy"), gate], name)
    refused = worse.context.gate
    assert refused is not None and refused.decision == "refused"
    assert refused.champion_score is not None
    assert refused.challenger_score < refused.champion_score
    assert version_for_alias(settings, name, CHAMPION) == "2"
    assert version_for_alias(settings, name, CHALLENGER) == "3"
    assert get_version(settings, name, "3").tags["loopml.gate"] == "refused"

    rollback(settings, name, reason="test")
    assert version_for_alias(settings, name, CHAMPION) == "1"
    champion_moves = [m.to_version for m in history(settings, name, alias=CHAMPION)]
    assert champion_moves == ["1", "2", "1"]
    assert all(m.run_id == better.run.id for m in history(settings, name) if m.to_version == "2")


def test_require_approval_leaves_the_challenger_waiting(
    data: dict[str, Path], settings: Settings, request: pytest.FixtureRequest
) -> None:
    name = _name("gate_approval", request)
    steps = [_train("lr"), {"validate_model": {"require_approval": True}}, {"register_model": {}}]
    result = _run(settings, data["clean"], steps, name)
    assert result.context.gate is not None
    assert result.context.gate.decision == "awaiting_approval"
    assert version_for_alias(settings, name, CHAMPION) is None  # register_model left it alone
    assert version_for_alias(settings, name, CHALLENGER) == "1"
    assert result.context.registered is not None
    assert result.context.registered.version == "1"  # registered once, not twice
    assert get_version(settings, name, "1").tags[APPROVAL_TAG] == "pending"
    approve(settings, name, "1", reason="checked by hand", actor="reviewer")
    assert version_for_alias(settings, name, CHAMPION) == "1"


def test_with_a_gate_register_model_never_makes_a_champion_so_nothing_is_undone(
    data: dict[str, Path], settings: Settings, request: pytest.FixtureRequest
) -> None:
    name = _name("gate_bar", request)
    steps = [_train("dummy"), {"register_model": {}}, {"validate_model": {"threshold": 0.5}}]
    result = _run(settings, data["clean"], steps, name)
    gate = result.context.gate
    assert gate is not None and gate.decision == "refused"
    assert "does not clear the threshold 0.5" in gate.reason
    assert version_for_alias(settings, name, CHAMPION) is None
    # one registration, one alias move: no champion set by registration and taken back
    assert [(m.alias, m.to_version) for m in history(settings, name)] == [(CHALLENGER, "1")]
    steps[-1] = {"validate_model": {"threshold": 0.0}}
    passed = _run(settings, data["clean"], steps, name)
    assert passed.context.gate is not None and passed.context.gate.decision == "promoted"
    assert version_for_alias(settings, name, CHAMPION) == "2"  # the gate's promotion
    assert [(m.alias, m.to_version) for m in history(settings, name)][1:] == [
        (CHALLENGER, "2"),
        (CHAMPION, "2"),
    ]


def test_validate_data_logs_the_profile_with_the_model_and_checks_later_batches(
    data: dict[str, Path], settings: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    name = _name("profiled", request)
    steps = [{"validate_data": {}}, _train("lr"), {"validate_model": {}}]
    first = _run(settings, data["clean"], steps, name)
    assert _validation(first).status == "profiled"  # no champion yet
    logged = reference_profile(settings, name, "1")
    assert logged is not None and logged.target == "Class" and len(logged.columns) == 30
    assert logged.model_dump() == first.context.reports["reference_profile"].model_dump()

    again = _run(settings, data["clean"], steps, name)
    assert _validation(again).status == "ok"
    assert "champion (version 1)" in _validation(again).reference

    check = [{"validate_data": {"on_failure": "warn"}}]
    warned = _run(settings, data["skewed"], check, name)
    assert warned.run.status == "succeeded"
    kinds = _validation(warned).kinds
    assert kinds == {
        "missing_column": ["V1"],
        "extra_column": ["coupon"],
        "retyped_column": ["V2"],
        "out_of_range": ["Amount"],
        "null_rate_jump": ["V3"],
        "distribution_shift": ["V4"],
    }
    assert len(warned.run.values["warnings"]) == 6  # recorded on the run in the metadata store

    with pytest.raises(StepError) as caught:
        _run(settings, data["skewed"], [{"validate_data": {}}], name)
    assert isinstance(caught.value.cause, SkewError)
    assert caught.value.cause.report.kinds()["missing_column"] == ["V1"]
    message = str(caught.value)
    for column in ("'V1': missing column", "'coupon': extra column", "'V2': retyped column"):
        assert column in message
    assert "6 skew issues" in message and "on_failure: warn" in message

    profile_file = tmp_path / "profile.json"
    profile_file.write_text(logged.to_json())
    by_file = [{"validate_data": {"reference": str(profile_file), "on_failure": "warn"}}]
    assert _validation(_run(settings, data["skewed"], by_file, name)).kinds == kinds
    by_alias = [{"validate_data": {"reference": f"{name}@champion", "on_failure": "warn"}}]
    assert _validation(_run(settings, data["skewed"], by_alias, name)).status == "warned"
    assert ReferenceProfile.from_json(profile_file.read_text()).rows == 1500

    # A champion that cannot score the new columns stops the gate with what to do.
    with pytest.raises(StepError, match="cannot score the frame 'holdout'") as failed:
        _run(settings, data["no_v1"], [_train("lr"), {"validate_model": {}}], name)
    assert "models promote" in str(failed.value)
    assert version_for_alias(settings, name, CHAMPION) == "1"


def test_gate_and_validation_parameters_are_checked_before_anything_runs(
    data: dict[str, Path],
) -> None:
    from loopml.core.errors import SpecError
    from loopml.engine import check_spec
    from loopml.steps.registry import StepRegistry

    steps = [
        {"validate_data": {"reference": "not a@reference/", "on_failure": "ignore"}},
        _train("lr"),
        {"validate_model": {"metric": "RMSE", "min_delta": -1, "threshold": 1}},
    ]
    with pytest.raises(SpecError) as caught:
        check_spec(parse_spec(_spec(data["clean"], steps, "m")), StepRegistry.with_builtins())
    issues = {issue.path: issue.render() for issue in caught.value.issues}
    assert set(issues) == {
        "pipeline[0].MLSteps[1].validate_data.reference",
        "pipeline[0].MLSteps[1].validate_data.on_failure",
        "pipeline[0].MLSteps[3].validate_model.metric",
        "pipeline[0].MLSteps[3].validate_model.min_delta",
    }
    assert "fraud@champion" in issues["pipeline[0].MLSteps[1].validate_data.reference"]
    assert "F1" in issues["pipeline[0].MLSteps[3].validate_model.metric"]  # the allowed ones
