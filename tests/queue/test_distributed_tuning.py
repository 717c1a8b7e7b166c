"""Distributed tuning on real workers: one Optuna study in PostgreSQL, trials on every worker.

Both tests share the session's RabbitMQ + PostgreSQL stack and its two
``loopml worker`` processes (one pool process each). The job runs in one
worker and works on its study too; the other worker takes a trial task.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from loopml.core.status import Status
from loopml.queue.submit import submit_spec_file
from tests.queue.conftest import Stack
from tests.queue.helpers import make_data, wait_for

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]
N_ITER = 6


def _spec(stack: Stack, name: str, data: Path, trees: tuple[int, int] = (60, 120)) -> Path:
    spec = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": str(data)}},
                    {
                        "train_model": {
                            "modeling_params": {
                                "estimator_list": ["rf"],
                                "fold": 2,
                                "n_jobs": 1,
                                "session_id": 3,
                                "tune": {
                                    "n_iter": N_ITER,
                                    "distributed": True,
                                    "choose_better": False,
                                    "optimize": "AUC",
                                    "custom_grid": {
                                        "rf": {
                                            "n_estimators": {"low": trees[0], "high": trees[1]},
                                            "max_depth": {"low": 2, "high": 8},
                                        }
                                    },
                                },
                            }
                        }
                    },
                    {"evaluate_model": {}},
                    {"register_model": {}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": f"exp-{name}",
            "model_name": name,
            "main_metric": "AUC",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    path = stack.folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def tuning_data(rabbit_stack: Stack) -> Path:
    return make_data(rabbit_stack.folder, 600, seed=11)


def _study(stack: Stack, job_id: str) -> Any:
    import optuna

    from loopml.steps.tuning import storage, study_name

    return optuna.load_study(
        study_name=study_name(job_id, "rf"), storage=storage(stack.settings, create=False)
    )


def _states(study: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        found[trial.state.name] = found.get(trial.state.name, 0) + 1
    return found


def _mlflow(stack: Stack) -> Any:
    from loopml.registry.tracking import use_tracking

    return use_tracking(stack.settings).MlflowClient()


def _children(client: Any, run_id: str) -> list[Any]:
    run = client.get_run(run_id)
    return client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.`loopml.kind` = 'trial'",
        max_results=1000,
    )


def test_a_study_runs_on_both_workers_and_its_best_trial_is_registered(
    rabbit_stack: Stack, tuning_data: Path
) -> None:
    stack = rabbit_stack
    stack.ensure_workers(2)
    name = f"dtune_{uuid.uuid4().hex[:6]}"
    job = submit_spec_file(stack.app, stack.settings, _spec(stack, name, tuning_data))
    finished = stack.wait_finished(job.id)
    assert finished.status == Status.SUCCEEDED, finished.error
    assert (finished.registered_name, finished.registered_version) == (name, "1")

    study = _study(stack, job.id)
    states = _states(study)
    counted = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    assert counted == N_ITER, states  # the study's gate: never a trial past n_iter
    pids = {t.user_attrs["pid"] for t in study.trials if t.state.name == "COMPLETE"}
    assert len(pids) >= 2, f"every trial ran in one process: {pids}"
    assert os.getpid() not in pids

    client = _mlflow(stack)
    (tuned,) = client.search_runs(
        [client.get_experiment_by_name(f"exp-{name}").experiment_id],
        filter_string="tags.`loopml.estimator_id` = 'rf_tuned'",
    )
    children = _children(client, tuned.info.run_id)
    assert len(children) == len(
        [t for t in study.trials if t.state.name not in ("RUNNING", "WAITING")]
    )
    assert (
        sum(c.data.tags["loopml.trial_state"] == "COMPLETE" for c in children) == states["COMPLETE"]
    )
    assert {int(c.data.tags["loopml.worker_pid"]) for c in children} >= pids
    for child in children:
        assert child.data.tags["loopml.worker_host"]
        if child.data.tags["loopml.trial_state"] == "COMPLETE":
            assert {"n_estimators", "max_depth"} <= set(child.data.params)
            assert "cv_auc_mean" in {key.lower() for key in child.data.metrics}
    best = study.best_trial.params
    assert int(tuned.data.params["n_estimators"]) == best["n_estimators"]
    assert int(tuned.data.params["max_depth"]) == best["max_depth"]
    artifacts = {a.path for a in client.list_artifacts(tuned.info.run_id, "plots")}
    assert "plots/tuning_optimization_history.png" in artifacts
    assert tuned.data.tags["loopml.tuning_storage"].startswith("distributed")


def test_a_worker_killed_mid_trial_loses_only_that_trial(
    rabbit_stack: Stack, tuning_data: Path
) -> None:
    stack = rabbit_stack
    stack.ensure_workers(2)
    name = f"dkill_{uuid.uuid4().hex[:6]}"
    # trials of a few seconds: a short one can finish between being seen RUNNING and the kill
    spec = _spec(stack, name, tuning_data, trees=(500, 700))
    job = submit_spec_file(stack.app, stack.settings, spec)
    jobs = stack.jobs()
    try:
        running = wait_for(
            lambda: (found := jobs.get(job.id)).worker and found.status == "running" and found,
            timeout=180,
            interval=0.1,
            what="the job to start",
        )
    finally:
        jobs.close()
    owner = stack.worker_for(running.worker)
    (other,) = [w for w in stack.live_workers() if w is not owner]

    seen: set[Any] = set()

    def other_mid_trial() -> Any:
        from optuna.exceptions import StorageInternalError

        ended = stack.jobs().get(job.id)
        if ended.finished:
            return f"finished {ended.status}: {ended.error}"
        try:
            study = _study(stack, job.id)
        except (KeyError, StorageInternalError):  # no study (or no schema) yet
            return None
        for trial in study.get_trials(deepcopy=False):
            pid = trial.user_attrs.get("pid")
            seen.add((trial.number, trial.state.name, pid, pid and _group(pid)))
            if trial.state.name == "RUNNING" and pid and _group(pid) == other.process.pid:
                return trial
        return None

    victim = wait_for(
        other_mid_trial, timeout=240, interval=0.05, what="a trial on the other worker"
    )
    assert not isinstance(victim, str), f"{victim}; trials seen {seen}"
    other.kill()

    finished = stack.wait_finished(job.id)
    assert finished.status == Status.SUCCEEDED, finished.error
    study = _study(stack, job.id)
    states = _states(study)
    counted = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    assert counted == N_ITER, states  # the study's gate: never a trial past n_iter
    lost = study.trials[victim.number]
    assert lost.state.name == "FAIL", lost.state
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    # the retry repeats what the lost trial had drawn (a kill between two suggestions
    # leaves it part of the parameters; the rest are drawn anew)
    assert retried and lost.params.items() <= retried[0].params.items(), (lost, retried)
    stack.ensure_workers(2)


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
