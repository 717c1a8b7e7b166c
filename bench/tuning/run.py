"""Distributed tuning benchmark: one study, 1 vs 2 worker processes, and in-process as anchor.

    .venv/bin/python bench/tuning/run.py [--trials 40] [--rows 4000] [--folds 3]
        [--estimators lightgbm,rf] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Data: examples/make_creditcard.py. Each estimator's study runs three ways,
side by side in the same run, on the same prepared folds:

- in-process: the trial loop in this process, one thread, an in-memory study;
- 1 and 2 workers: processes that run :func:`loopml.steps.tuning.work_on_study`,
  exactly what a training worker's trial task runs (RDBStorage in a fresh
  PostgreSQL database with heartbeats, the folds fetched from the MLflow
  artifact store and checked by hash). Each worker is one process with its
  BLAS/OpenMP threads held to one. Workers import everything first and start
  together, as preloaded Celery workers would; broker delivery (milliseconds
  per task, once per worker) is left out.

Printed per configuration: wall time, trials/min, best CV AUC, the start-up
of the workers (opening the study, fetching the folds: once per worker and
job) and the time per trial spent outside the objective (storage round trips,
heartbeats, the shared n_iter bound) as a share of the trial's own time: the
distributed overhead per trial. The speed-up of 2 workers
over 1 is the wall-time ratio; trial costs vary with the sampled parameters,
so ``busy`` (the sum of trial seconds / wall) is printed too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))


def _settings(database: str, folder: Path) -> Any:
    from loopml.core.settings import Settings

    return Settings(
        home=folder / "home",
        database_url=database,
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )


def _worker(settings: Any, job_id: str, estimator_id: str, ready: Any, start: Any) -> None:
    """One worker process: preload, wait for the start, run trials until the study is full."""
    import lightgbm  # noqa: F401
    import mlflow.artifacts  # noqa: F401  (a Celery worker preloads MLflow too)
    import optuna  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    from loopml.steps.tuning import work_on_study

    ready.put(True)
    start.wait()
    with threadpool_limits(1):
        work_on_study(settings, job_id, estimator_id)


def _summary(label: str, study: Any, wall: float, began: float) -> dict[str, Any]:
    """Figures of one run; ``began`` is the wall-clock (epoch) second the workers started."""
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    seconds = [float(t.user_attrs.get("seconds", 0.0)) for t in trials]
    per_trial = sum(seconds) / len(seconds)
    by_pid: dict[Any, list[Any]] = {}
    for trial in trials:
        by_pid.setdefault(trial.user_attrs.get("pid"), []).append(trial)
    outside = 0.0  # time between a process's first trial start and last end, not in trials
    for own in by_pid.values():
        span = max(t.datetime_complete for t in own) - min(t.datetime_start for t in own)
        outside += span.total_seconds() - sum(float(t.user_attrs["seconds"]) for t in own)
    first = min(t.datetime_start for t in trials).timestamp()
    return {
        "label": label,
        "trials": len(trials),
        "wall": wall,
        "per_min": 60 * len(trials) / wall,
        "best": study.best_value,
        "trial_s": per_trial,
        "busy": sum(seconds) / wall,
        "processes": len(by_pid),
        "startup": first - began,
        "overhead": outside / len(trials) / per_trial,
    }


def _distributed(
    settings: Any, run_id: str, plan: Any, data: Any, workers: int
) -> tuple[Any, float, float]:
    from loopml.steps.tuning import WorkerStudies
    from loopml.store.jobs import TRAINING, JobStore

    job_id = f"bench{uuid.uuid4().hex[:12]}"
    host = WorkerStudies(settings, job_id, run_id, lambda *_: None)
    jobs = JobStore(settings.database)  # trial tasks only serve a running training job
    try:
        jobs.create(job_id, kind=TRAINING, queue="bench")
        jobs.start_attempt(job_id, "bench")
    finally:
        jobs.close()
    import optuna

    from loopml.automl.trials import pruner_for, sampler_for

    study = optuna.create_study(
        study_name=host.study_name(plan.estimator_id),
        storage=host.storage(),
        direction=plan.direction,
        sampler=sampler_for(plan, None),
        pruner=pruner_for(plan),
    )
    host.share(study, plan, data)
    context = multiprocessing.get_context("spawn")
    ready, start = context.Queue(), context.Event()
    processes = [
        context.Process(target=_worker, args=(settings, job_id, plan.estimator_id, ready, start))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)
    began, clock = time.time(), time.perf_counter()
    start.set()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a worker exited with {process.exitcode}")
    wall = time.perf_counter() - clock
    return optuna.load_study(study_name=study.study_name, storage=host.storage()), wall, began


def _in_process(plan: Any, data: Any) -> tuple[Any, float, float]:
    import optuna
    from threadpoolctl import threadpool_limits

    from loopml.automl.studies import work
    from loopml.automl.trials import objective, pruner_for, sampler_for

    study = optuna.create_study(
        direction=plan.direction, sampler=sampler_for(plan, None), pruner=pruner_for(plan)
    )
    began, clock = time.time(), time.perf_counter()
    with threadpool_limits(1):
        work(study, objective(plan, data, 1, plan.seed), plan.n_iter, lambda: None)
    return study, time.perf_counter() - clock, began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--estimators", default="lightgbm,rf")
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()

    import optuna
    import sqlalchemy as sa
    from make_creditcard import make_creditcard

    from loopml.automl.config import TrainParams
    from loopml.automl.session import start_session
    from loopml.automl.trials import Plan, TrialData
    from loopml.automl.tune import space_for

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frame = make_creditcard(args.rows, seed=7)
    params = TrainParams.model_validate(
        {"modeling_params": {"fold": args.folds, "n_jobs": 1, "session_id": 1}}
    )
    session = start_session(frame, "Class", "classification", "AUC", params, 1, lambda *_: None)
    data = TrialData.of(session)
    name = f"loopml_bench_tuning_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database = args.postgres.rsplit("/", 1)[0] + f"/{name}"
    print(
        f"rows {args.rows} (training {len(session.y_train)}), folds {args.folds}, "
        f"{args.trials} trials per study, TPE; PostgreSQL database {name}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="loopml-bench-tuning-") as folder:
            settings = _settings(database, Path(folder))
            from loopml.registry.tracking import use_tracking

            client = use_tracking(settings).MlflowClient()
            experiment = client.create_experiment("bench-tuning")
            run_id = client.create_run(experiment).info.run_id
            for estimator_id in args.estimators.split(","):
                space = space_for("classification", estimator_id, {})
                plan = Plan(
                    estimator_id=estimator_id,
                    problem_type="classification",
                    metric="AUC",
                    space={k: list(v) for k, v in space.items()},
                    n_iter=args.trials,
                    algorithm="tpe",
                    pruner=None,
                    seed=1,
                    n_classes=session.n_classes,
                    extra={"n_jobs": 1},
                )
                rows = [_summary("in-process", *_in_process(plan, data))]
                for workers in (1, 2):
                    found = _distributed(settings, run_id, plan, data, workers)
                    rows.append(_summary(f"{workers} worker(s)", *found))
                _print(estimator_id, rows)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _print(estimator_id: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{estimator_id}")
    print(
        f"  {'':<12} {'trials':>6} {'procs':>5} {'wall s':>8} {'trials/min':>10} "
        f"{'best AUC':>9} {'trial s':>8} {'busy':>5} {'startup s':>9} {'overhead':>9}"
    )
    for row in rows:
        print(
            f"  {row['label']:<12} {row['trials']:>6} {row['processes']:>5} {row['wall']:>8.1f} "
            f"{row['per_min']:>10.1f} {row['best']:>9.4f} {row['trial_s']:>8.2f} "
            f"{row['busy']:>5.2f} {row['startup']:>9.1f} {row['overhead']:>8.1%}"
        )
    one, two = rows[1], rows[2]
    print(
        f"  2 workers vs 1: wall-time speed-up {one['wall'] / two['wall']:.2f}x "
        f"(target >= 1.7x); trials/min ratio {two['per_min'] / one['per_min']:.2f}x"
    )
    print(
        "  distributed overhead per trial (1 worker) "
        f"{one['overhead']:.1%} vs in-process {rows[0]['overhead']:.1%} of a trial's time "
        "(target: distributed under 5 %)"
    )


if __name__ == "__main__":
    main()
