"""Trial tasks that pass admission but name what no trial may run on: refused, nothing loaded.

``loopml.tune_trials`` is run here as a worker's pool process runs it
(:func:`loopml.queue.tasks.run_trials`), on a real study in PostgreSQL with
its folds in a real MLflow store. The folds a study records are a pickle
that would create a marker file when loaded: a refused message must never
load them, and folds whose bytes differ from the recorded SHA-256 are never
loaded either. Counted: the Reject and its reason, the study's trials, the
marker file.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Reject

from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.queue.tasks import run_trials
from loopml.store.jobs import TRAINING, JobStore
from tests.conftest import fresh_postgres_database


class _Explode:
    """Unpickling this creates ``marker``: the proof that folds were loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Shared:
    settings: Settings
    job_id: str
    folds: Path
    marker: Path
    host: Any
    study: Any
    plan: Any

    def message(self, estimator: str = "rf") -> dict[str, Any]:
        return {"job_id": self.job_id, "estimator": estimator, "ticket": f"{self.job_id}-rf-0"}

    def trials(self) -> int:
        import optuna

        from loopml.steps.tuning import storage, study_name

        study = optuna.load_study(
            study_name=study_name(self.job_id, "rf"),
            storage=storage(self.settings, create=False),
        )
        return len(study.trials)


@pytest.fixture
def shared(tmp_path: Path, postgres_url: str, tracking_uri: str) -> Shared:
    """A running training job whose rf study is shared the way the job shares it."""
    from loopml.automl.trials import Plan
    from loopml.registry.tracking import use_tracking
    from loopml.steps.tuning import WorkerStudies, study_name

    settings = Settings(
        home=tmp_path / "home",
        database_url=postgres_url,
        tracking_uri=tracking_uri,
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    job_id = uuid.uuid4().hex
    jobs = JobStore(settings.database)
    try:
        jobs.create(job_id, kind=TRAINING, queue="training")
        jobs.start_attempt(job_id, "the job's worker")
    finally:
        jobs.close()
    client = use_tracking(settings).MlflowClient()
    experiment = client.create_experiment(f"trials-{job_id}")
    run = client.create_run(experiment)
    host = WorkerStudies(settings, job_id, run.info.run_id, lambda *_: None)
    study = _create_study(host.storage(), study_name(job_id, "rf"))
    plan = Plan(
        "rf", "classification", "AUC", {"max_depth": ["int", 2, 4, False]}, 3, "random", None, 1, 2
    )
    marker = tmp_path / "unpickled"
    host.share(study, plan, _Explode(marker))
    artifacts = Path(client.get_run(run.info.run_id).info.artifact_uri.removeprefix("file://"))
    folds = artifacts / "tuning" / f"{study_name(job_id, 'rf')}.joblib"
    assert folds.exists()
    return Shared(settings, job_id, folds, marker, host, study, plan)


def _create_study(storage: Any, name: str) -> Any:
    import optuna

    return optuna.create_study(study_name=name, storage=storage, direction="maximize")


def _refusal(shared: Shared, kwargs: dict[str, Any]) -> str:
    with pytest.raises(Reject) as refused:
        run_trials(shared.settings, (), kwargs)
    assert refused.value.requeue is False
    return str(refused.value.reason)


def test_a_trial_for_a_finished_job_is_refused_before_its_folds_are_loaded(
    shared: Shared,
) -> None:
    jobs = JobStore(shared.settings.database)
    try:
        jobs.finish(shared.job_id, Status.FAILED, error="killed")
    finally:
        jobs.close()
    reason = _refusal(shared, shared.message())
    assert f"job {shared.job_id} is failed" in reason
    assert shared.trials() == 0
    assert not shared.marker.exists(), "the folds of a dead job's study were unpickled"


def test_folds_whose_bytes_differ_from_the_recorded_hash_are_never_loaded(
    shared: Shared,
) -> None:
    import pickle

    replaced = pickle.dumps(_Explode(shared.marker.with_name("replaced")))
    shared.folds.write_bytes(replaced)
    reason = _refusal(shared, shared.message())
    assert "do not match the SHA-256" in reason and shared.folds.name in reason
    assert not shared.marker.with_name("replaced").exists()
    assert shared.trials() == 0


def test_missing_folds_and_unknown_studies_are_refused_with_the_reason(shared: Shared) -> None:
    reason = _refusal(shared, {**shared.message("lr"), "ticket": f"{shared.job_id}-lr-0"})
    assert reason == f"no tuning study loopml-{shared.job_id}-lr exists"
    shared.folds.unlink()
    reason = _refusal(shared, shared.message())
    assert "cannot be fetched" in reason and shared.folds.name in reason
    assert shared.trials() == 0


def test_a_trial_on_a_database_without_any_study_is_refused(tmp_path: Path) -> None:
    with fresh_postgres_database("trials") as database:
        settings = Settings(home=tmp_path / "home", database_url=database)
        job_id = uuid.uuid4().hex
        jobs = JobStore(settings.database)
        try:
            jobs.create(job_id, kind=TRAINING, queue="training")
        finally:
            jobs.close()
        with pytest.raises(Reject) as refused:
            run_trials(
                settings, (), {"job_id": job_id, "estimator": "rf", "ticket": f"{job_id}-rf-0"}
            )
    assert "no tuning study" in str(refused.value.reason)


def test_a_trial_task_counts_and_starts_its_trial_under_the_studys_gate(shared: Shared) -> None:
    """Two processes that check the count at the same moment never both start the last trial.

    The test plays the other process: it holds the study's gate, sees the task
    wait for it, starts the study's last trial itself, then lets go. The task
    then finds the study full; without the gate it would have started a trial
    past ``n_iter``.
    """
    import threading

    import optuna
    import sqlalchemy as sa

    from loopml.steps.tuning import _GATE_SPACE, StudyGate, _url
    from tests.queue.helpers import wait_for

    shared.host.share(shared.study, shared.plan, {"folds": "never used"})
    distributions = {"max_depth": optuna.distributions.IntDistribution(2, 4)}

    def add_trial() -> None:
        trial = optuna.trial.create_trial(
            params={"max_depth": 3}, distributions=distributions, value=0.5
        )
        shared.study.add_trial(trial)

    for _ in range(shared.plan.n_iter - 1):
        add_trial()
    outcome: dict[str, Any] = {}

    def task() -> None:
        try:
            outcome["result"] = run_trials(shared.settings, (), shared.message())
        except BaseException as error:  # shown by the assertion below
            outcome["error"] = error

    engine = sa.create_engine(_url(shared.settings.database), poolclass=sa.pool.NullPool)
    waiting = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid = :space AND objid = :study AND objsubid = 2 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    key = {"space": _GATE_SPACE, "study": shared.study._study_id}
    with StudyGate(shared.settings, shared.study) as gate:
        gate.acquire()
        worker = threading.Thread(target=task, daemon=True)
        worker.start()
        try:
            with engine.connect() as connection:
                wait_for(
                    lambda: connection.execute(waiting, key).scalar(),
                    timeout=60,
                    what=f"the trial task to wait for the gate ({outcome})",
                )
            add_trial()  # the other process's last trial
        finally:
            gate.release()
            worker.join(60)
            engine.dispose()
    assert outcome.get("result") == {"study": shared.study.study_name, "trials": 0}, outcome
    assert shared.trials() == shared.plan.n_iter


def test_a_huge_n_iter_publishes_a_bounded_number_of_trial_tasks(tmp_path: Path) -> None:
    """Each trial task runs trials until the study is full: a few suffice, never n_iter - 1."""
    from loopml.steps.tuning import MAX_TRIAL_TASKS, WorkerStudies

    published: list[tuple[str, str, int]] = []
    host = WorkerStudies(
        Settings(home=tmp_path), "job1", "run1", lambda *args: published.append(args)
    )
    host.fan_out("loopml-job1-rf", 10**9)
    host.fan_out("loopml-job1-lr", 3)
    assert published == [("job1", "rf", MAX_TRIAL_TASKS), ("job1", "lr", 3)]
