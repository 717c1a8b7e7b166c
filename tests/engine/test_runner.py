"""The engine end to end on real stores: run, fail, resume, and nothing written for bad specs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from loopml.core.errors import LoopmlError, SpecError, StepError
from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.engine import check_spec_text, load_spec, resume_run, run_job, run_pipeline
from loopml.steps.registry import StepRegistry
from loopml.store import RunStore
from tests.engine import steps_for_tests


@pytest.fixture
def registry() -> StepRegistry:
    registry = StepRegistry.with_builtins(plugins=False)
    registry.add("count_runs", steps_for_tests.count_runs)
    registry.add("flaky", steps_for_tests.flaky)
    registry.add("counted_loader", steps_for_tests.counted_loader)
    registry.add("sneaky", steps_for_tests.sneaky)
    return registry


def _spec(tmp_path: Path, steps: list[dict[str, object]], target: str = "Class") -> str:
    data = tmp_path / "data.csv"
    data.write_text("a,b,Class\n1,2,0\n3,4,1\n5,6,0\n")
    return json.dumps(
        {
            "pipeline": [{"MLSteps": [{"load_data_from_file": {"path": "data.csv"}}, *steps]}],
            "experiment_config": {
                "experiment_name": "engine-tests",
                "model_name": "m",
                "main_metric": "F1",
                "problem_type": "classification",
                "target": target,
            },
        }
    )


def _tripped_spec(tmp_path: Path) -> tuple[Path, Path, str]:
    """A spec whose flaky step fails while the trip file exists; (ledger, trip file, text)."""
    ledger, trip = tmp_path / "ledger.txt", tmp_path / "trip"
    trip.touch()
    steps = [{"count_runs": {"ledger": str(ledger)}}, {"flaky": {"trip_file": str(trip)}}]
    return ledger, trip, _spec(tmp_path, steps)


def test_a_run_is_recorded_with_provenance_and_step_timings(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    ledger = tmp_path / "ledger.txt"
    text = _spec(tmp_path, [{"count_runs": {"ledger": str(ledger)}}])
    result = run_pipeline(
        parse_spec(text, source=tmp_path / "spec.json"), settings, registry=registry
    )
    run = result.run
    assert run.status == "succeeded"
    assert run.spec_text == text
    assert len(run.spec_hash) == 64
    assert run.data_fingerprint == run.values["loaded"]["fingerprint"]
    assert run.values["loaded"]["shape"] == [3, 3] and run.values["counted"] == 3
    assert run.host and run.user and run.loopml_version
    assert run.mlflow_run_id
    assert [(s.name, s.status, s.attempt) for s in run.steps] == [
        ("load_data_from_file", "succeeded", 1),
        ("count_runs", "succeeded", 1),
    ]
    assert all(s.duration_s is not None and s.duration_s >= 0 for s in run.steps)
    assert set(run.steps[0].outputs) == {"data/train", "loaded"}  # exactly what it declares
    assert set(run.steps[1].outputs) == {"values/counted", "reports/row_count"}
    assert result.context.reports["row_count"] == {"rows": 3}

    import mlflow

    mlflow.set_tracking_uri(settings.tracking)
    parent = mlflow.get_run(run.mlflow_run_id)
    assert parent.data.tags["loopml.run_id"] == run.id
    assert parent.info.status == "FINISHED"


def test_resume_reruns_only_the_failed_step(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    ledger, trip, text = _tripped_spec(tmp_path)
    with pytest.raises(StepError, match="tripped by") as caught:
        run_pipeline(parse_spec(text, source=tmp_path / "spec.json"), settings, registry=registry)
    assert caught.value.position == 2

    store = RunStore(settings.database)
    (failed,) = store.list_runs()
    assert failed.status == "failed"
    assert failed.error is not None and "tripped by" in failed.error
    assert failed.traceback is not None and "RuntimeError" in failed.traceback
    before = failed.latest_steps()

    trip.unlink()
    result = resume_run(failed.id[:8], settings, registry=registry)
    resumed = store.get_run(failed.id)
    store.close()

    assert resumed.status == "succeeded" and resumed.attempts == 2
    after = resumed.latest_steps()
    for position in (0, 1):  # earlier steps untouched: same single attempt, same timings
        assert after[position].attempt == 1
        assert after[position].started_at == before[position].started_at
        assert after[position].ended_at == before[position].ended_at
    assert [(s.position, s.attempt, s.status) for s in resumed.steps if s.position == 2] == [
        (2, 1, "failed"),
        (2, 2, "succeeded"),
    ]
    assert after[2].started_at > before[2].started_at
    assert ledger.read_text().count("\n") == 1  # count_runs ran exactly once
    # the resumed step saw what the earlier steps made, restored from the artifacts
    assert result.context.values["seen_counted"] == 3
    assert list(result.context.data["train"]["doubled"]) == [2, 6, 10]
    # typed outputs come back typed: the loader's record, from the first attempt
    assert result.context.loaded is not None and result.context.loaded.shape == (3, 3)
    assert result.context.loaded.fingerprint == failed.data_fingerprint


def test_resuming_a_succeeded_run_is_refused(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    result = run_pipeline(
        parse_spec(_spec(tmp_path, []), source=tmp_path / "s.json"), settings, registry=registry
    )
    with pytest.raises(Exception, match="already succeeded"):
        resume_run(result.run.id, settings, registry=registry)


def test_a_bad_spec_writes_nothing_to_any_store(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    text = _spec(tmp_path, [{"count_runz": {}}], target="Clas")
    with pytest.raises(SpecError) as caught:
        run_pipeline(parse_spec(text, source=tmp_path / "spec.json"), settings, registry=registry)
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {"pipeline[0].MLSteps[1].count_runz", "experiment_config.target"}
    assert not settings.home.exists()
    if settings.database.startswith("sqlite"):
        assert not Path(settings.database.removeprefix("sqlite:///")).exists()
    else:
        store = RunStore(settings.database)
        assert store.list_runs() == []
        store.close()


def test_a_step_writing_what_it_did_not_declare_fails_the_run(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    text = _spec(tmp_path, [{"sneaky": {}}])
    with pytest.raises(StepError, match="values/smuggled") as caught:
        run_pipeline(parse_spec(text, source=tmp_path / "spec.json"), settings, registry=registry)
    assert "declared: values/allowed" in str(caught.value)
    store = RunStore(settings.database)
    (run,) = store.list_runs()
    store.close()
    assert run.status == "failed"
    assert [(s.name, s.status) for s in run.steps][-1] == ("sneaky", "failed")


def _peek_spec(tmp_path: Path) -> tuple[Path, Path]:
    data, peeks = tmp_path / "data.csv", tmp_path / "peeks.txt"
    data.write_text("a,b,Class\n1,2,0\n3,4,1\n5,6,0\n")
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "pipeline": [
                    {"MLSteps": [{"counted_loader": {"path": str(data), "peeks": str(peeks)}}]}
                ],
                "experiment_config": {
                    "experiment_name": "engine-tests",
                    "model_name": "m",
                    "main_metric": "F1",
                    "problem_type": "classification",
                    "target": "Class",
                },
            }
        )
    )
    return spec, peeks


def test_a_checked_spec_runs_without_a_second_check(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    spec, peeks = _peek_spec(tmp_path)
    checked = load_spec(spec, registry)
    assert peeks.read_text().count("peek") == 1
    assert checked.step_names == ("counted_loader",) and checked.text == spec.read_text()
    assert checked.base_dir == tmp_path and len(checked.spec_hash) == 64
    result = run_pipeline(checked, settings, registry=registry)
    assert result.run.status == "succeeded"
    assert peeks.read_text().count("peek") == 1  # the run did not read the header again
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.steps = ()  # type: ignore[misc]


def test_run_job_runs_resumes_or_skips_one_run_per_job(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    ledger, trip, text = _tripped_spec(tmp_path)
    checked = check_spec_text(text, registry, source=tmp_path / "spec.json")
    job_id = "a" * 32
    with pytest.raises(StepError, match="tripped by"):
        run_job(job_id, checked, settings, registry=registry)
    other = check_spec_text(_spec(tmp_path, []), registry, source=tmp_path / "spec.json")
    with pytest.raises(LoopmlError, match="was recorded with spec"):  # not this job's spec
        run_job(job_id, other, settings, registry=registry)
    trip.unlink()
    resumed = run_job(job_id, checked, settings, registry=registry)
    assert resumed.action == "resumed" and resumed.run.status == "succeeded"
    again = run_job(job_id, checked, settings, registry=registry)  # a redelivered message
    assert again.action == "skipped" and again.run.id == job_id
    store = RunStore(settings.database)
    runs = store.list_runs()
    store.close()
    assert [run.id for run in runs] == [job_id]  # one run for the job, however often delivered
    assert [(s.position, s.attempt) for s in runs[0].steps] == [(0, 1), (1, 1), (2, 1), (2, 2)]
    assert ledger.read_text().count("\n") == 1
    assert again.registered is None  # nothing registered by this pipeline


def test_the_parent_mlflow_run_carries_the_spec_main_parameters(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    result = run_pipeline(
        parse_spec(_spec(tmp_path, []), source=tmp_path / "s.json"), settings, registry=registry
    )
    import mlflow

    mlflow.set_tracking_uri(settings.tracking)
    params = mlflow.get_run(result.run.mlflow_run_id).data.params
    assert params == {
        "experiment_name": "engine-tests",
        "model_name": "m",
        "main_metric": "F1",
        "problem_type": "classification",
        "target": "Class",
        "steps": "load_data_from_file",
    }


def test_typed_outputs_survive_a_resume_and_nothing_is_registered_twice(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    from loopml.registry.models import list_versions
    from loopml.testing import small_frame

    registry.add("tripwire", steps_for_tests.tripwire)
    small_frame("classification", rows=200, seed=5).to_csv(tmp_path / "small.csv", index=False)
    trip = tmp_path / "trip"
    trip.touch()
    name = f"resumed_{tmp_path.name}"
    document = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": "small.csv"}},
                    {"train_model": {"modeling_params": {"estimator_list": ["dt"], "fold": 2}}},
                    {"register_model": {}},
                    {"tripwire": {"trip_file": str(trip)}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "engine-tests",
            "model_name": name,
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "target",
        },
    }
    spec = parse_spec(json.dumps(document), source=tmp_path / "spec.json")
    with pytest.raises(StepError, match="tripped by"):
        run_pipeline(spec, settings, registry=registry)
    store = RunStore(settings.database)
    (failed,) = store.list_runs(model_name=name)
    store.close()
    assert failed.registered is not None and failed.registered.version == "1"
    assert set(failed.latest_steps()[2].outputs) == {"registered"}

    trip.unlink()
    result = resume_run(failed.id, settings, registry=registry)
    context = result.context
    assert result.run.status == "succeeded"
    # restored typed, from the first attempt's artifacts: not run again, not registered again
    assert context.registered == failed.registered
    assert context.trained is not None and context.trained.estimator
    assert context.trained.model_uri == context.registered.model_uri
    assert [v.version for v in list_versions(settings, name)] == ["1"]
    assert [(s.position, s.attempt) for s in result.run.steps] == [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (3, 2),
    ]


class _Planted:
    """A pickle that, when loaded, leaves a marker file: code run by unpickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_resume_refuses_a_step_output_changed_in_the_artifact_store(
    tmp_path: Path, settings: Settings, registry: StepRegistry
) -> None:
    # before: a resume unpickled whatever the run's artifact folder held, so anyone who
    # can write to the tracking server's artifacts ran code on the worker that resumed
    import pickle
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    _ledger, trip, text = _tripped_spec(tmp_path)
    with pytest.raises(StepError, match="tripped by"):
        run_pipeline(parse_spec(text, source=tmp_path / "spec.json"), settings, registry=registry)
    store = RunStore(settings.database)
    (failed,) = store.list_runs()
    store.close()
    pickles = [
        pointer
        for step in failed.latest_steps().values()
        for pointer in step.outputs.values()
        if pointer.split("#")[0].endswith(".pkl")
    ]
    assert pickles
    marker = tmp_path / "planted-ran"
    path = Path(url2pathname(urlparse(pickles[0].split("#")[0]).path))
    path.write_bytes(pickle.dumps(_Planted(marker)))
    trip.unlink()
    with pytest.raises(LoopmlError, match="changed since the step wrote it"):
        resume_run(failed.id, settings, registry=registry)
    assert not marker.exists()
