"""Distributed tuning: one Optuna study in PostgreSQL, trials on every training worker.

The training job creates the study (Optuna's ``RDBStorage`` in its own
``optuna`` schema of the metadata database, created once, under an advisory
lock, before any trial task is published), stores the prepared folds once as
an artifact of the pipeline's MLflow run, and asks idle workers to join
through a publisher the queue layer installs around the job
(:func:`trial_publisher`). A worker's trial task ends in :func:`work_on_study`.

Trials beat a heartbeat; a trial whose worker died is failed by the next
process that checks and retried with the same parameters
(``RetryHeartbeatStaleTrialCallback``, formerly ``RetryFailedTrialCallback``),
so a SIGKILL costs that one trial.
The folds file is unpickled only if its SHA-256 equals the one the job
wrote next to the study in the database.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from loopml.core.errors import MessageError
from loopml.core.settings import Settings

log = logging.getLogger(__name__)

Publisher = Callable[[str, str, int], None]
"""``publish(job_id, estimator_id, count)``: put ``count`` trial tasks on the training queue."""

_publisher: ContextVar[Publisher | None] = ContextVar("loopml_trial_publisher", default=None)
SCHEMA = "optuna"
PLAN = "loopml.plan"
BUNDLE = "loopml.folds"
_LOCK_KEY = 0x6C6F6F706D6C  # "loopml": the advisory lock that serialises schema creation
_GATE_SPACE = 0x6C6F6F70  # "loop": first key of the per-study gates (the second: the study id)
_GATE_KEY = "CAST(:space AS integer), CAST(:study AS integer)"
MAX_TRIAL_TASKS = 64
"""Trial tasks one study publishes at most (each runs trials until the study is full)."""
_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


@contextmanager
def trial_publisher(publish: Publisher) -> Iterator[None]:
    """Let a job running inside this context fan its trials out with ``publish``."""
    token = _publisher.set(publish)
    try:
        yield
    finally:
        _publisher.reset(token)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres://"))


def study_name(job_id: str, estimator_id: str) -> str:
    return f"loopml-{job_id}-{estimator_id}"


def _url(database: str) -> str:
    for bare in ("postgresql://", "postgres://"):
        if database.startswith(bare):
            return "postgresql+psycopg://" + database.removeprefix(bare)
    return database


def storage(settings: Settings, *, create: bool) -> Any:
    """The study storage in the metadata database's ``optuna`` schema, with heartbeats.

    Optuna keeps its own alembic version table, so it gets a schema of its
    own rather than sharing loopml's. ``create`` makes the schema and tables
    (the job, once, before fan-out); workers skip table creation.
    """
    import optuna
    import sqlalchemy as sa

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = _url(settings.database)
    # Opening a storage reads (and may stamp) Optuna's version tables: readers share the
    # lock, the one creating the schema holds it alone, so nobody sees it half made.
    shared = "" if create else "_shared"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    lock = {"key": _LOCK_KEY}
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"SELECT pg_advisory_lock{shared}(:key)"), lock)
            try:
                if create:
                    connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
                    connection.commit()
                return _rdb(url, settings, create=create)
            finally:
                connection.execute(sa.text(f"SELECT pg_advisory_unlock{shared}(:key)"), lock)
                connection.commit()
    finally:
        engine.dispose()


def _rdb(url: str, settings: Settings, *, create: bool) -> Any:
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; we rely on them
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs={
                "pool_pre_ping": True,
                "connect_args": {"options": f"-csearch_path={SCHEMA}"},
            },
            heartbeat_interval=settings.tuning_heartbeat,
            grace_period=settings.tuning_grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            skip_table_creation=not create,
        )


class StudyGate:
    """A PostgreSQL advisory lock per study, on a connection of its own (autocommit).

    Every process working on the study counts its trials and creates the next
    one under it (:func:`loopml.automl.studies.work`), so a flood of trial
    tasks never takes a study past ``n_iter``. A process that dies holding it
    loses its connection, and PostgreSQL releases the lock.
    """

    def __init__(self, settings: Settings, study: Any) -> None:
        import sqlalchemy as sa

        self._key = {"space": _GATE_SPACE, "study": int(study._study_id)}
        self._engine = sa.create_engine(
            _url(settings.database), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        self._connection: Any = None
        self._held = False

    def acquire(self) -> None:
        import sqlalchemy as sa

        if self._held:
            return
        if self._connection is None:
            self._connection = self._engine.connect()
        self._connection.execute(sa.text(f"SELECT pg_advisory_lock({_GATE_KEY})"), self._key)
        self._held = True

    def release(self) -> None:
        import sqlalchemy as sa

        if not self._held:
            return
        self._held = False
        self._connection.execute(sa.text(f"SELECT pg_advisory_unlock({_GATE_KEY})"), self._key)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()  # releases a lock still held
            self._connection = None
        self._engine.dispose()

    def __enter__(self) -> StudyGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkerStudies:
    """The :class:`~loopml.automl.tune.StudyHost` of a job running in a training worker."""

    def __init__(
        self, settings: Settings, job_id: str, mlflow_run_id: str, publish: Publisher
    ) -> None:
        self.settings = settings
        self.job_id = job_id
        self.mlflow_run_id = mlflow_run_id
        self.publish = publish

    def storage(self) -> Any:
        return storage(self.settings, create=True)

    def study_name(self, estimator_id: str) -> str:
        return study_name(self.job_id, estimator_id)

    def share(self, study: Any, plan: Any, data: Any) -> None:
        import joblib

        from loopml.registry.tracking import use_tracking

        mlflow = use_tracking(self.settings)
        with tempfile.TemporaryDirectory(prefix="loopml-folds-") as folder:
            path = Path(folder) / f"{study.study_name}.joblib"
            joblib.dump(data, path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            mlflow.MlflowClient().log_artifact(self.mlflow_run_id, str(path), "tuning")
        study.set_user_attr(PLAN, plan.as_json())
        study.set_user_attr(
            BUNDLE,
            {"run_id": self.mlflow_run_id, "path": f"tuning/{path.name}", "sha256": digest},
        )

    def gate(self, study: Any) -> StudyGate:
        return StudyGate(self.settings, study)

    def fan_out(self, study_name: str, count: int) -> None:
        """Publish ``count`` trial tasks, at most :data:`MAX_TRIAL_TASKS`.

        A task runs trials until the study is full, so a few per worker process
        are enough; ``n_iter: 1000000`` must not become a million messages.
        """
        count = min(count, MAX_TRIAL_TASKS)
        if count > 0:
            estimator_id = study_name.removeprefix(f"loopml-{self.job_id}-")
            self.publish(self.job_id, estimator_id, count)


def study_host(settings: Settings, job_id: str, mlflow_run_id: str | None) -> WorkerStudies | None:
    """The workers' study host when this job runs in a worker with PostgreSQL; else ``None``."""
    publish = _publisher.get()
    if publish is None or mlflow_run_id is None or not is_postgres(settings.database):
        return None
    return WorkerStudies(settings, job_id, mlflow_run_id, publish)


def work_on_study(settings: Settings, job_id: str, estimator_id: str) -> dict[str, Any]:
    """A trial task's body: run trials of the job's study until it has ``n_iter``.

    A study that is closed or full ends the task at once: trial tasks are
    published generously and the late ones find nothing to do. Anyone who can
    publish to the training queue can send a trial message, so what only a
    forged or stale message can name is refused with a :class:`MessageError`
    (the task dead-letters it with that reason): a job that is not a running
    training job, a study that does not exist or was never shared, folds that
    cannot be fetched or whose SHA-256 differs from the one the job recorded.
    """
    from loopml.automl.studies import closed, counts, work
    from loopml.automl.trials import objective, pruner_for, sampler_for

    name = study_name(job_id, estimator_id)
    _check_job(settings, job_id, name)
    if not is_postgres(settings.database):
        return {"study": name, "trials": 0, "reason": "the metadata store is not PostgreSQL"}
    study = _load_study(settings, name)
    attrs = study.user_attrs
    if PLAN not in attrs or BUNDLE not in attrs:
        raise MessageError(f"study {name} was never shared with the workers (no plan or folds)")
    plan = _plan(attrs[PLAN], name)
    done, running = counts(study)
    if closed(study) or done + running >= plan.n_iter:
        log.info("study %s is complete; nothing to do", name)
        return {"study": name, "trials": 0, "reason": "the study is complete"}
    data = _folds(settings, attrs[BUNDLE], name)
    study.sampler = sampler_for(plan, None)
    study.pruner = pruner_for(plan)
    func = objective(plan, data, int(plan.extra.get("n_jobs", 1)), plan.seed)
    with StudyGate(settings, study) as gate:
        ran = work(study, func, plan.n_iter, lambda: None, gate)
    return {"study": name, "trials": ran}


def _check_job(settings: Settings, job_id: str, name: str) -> None:
    """Refuse unless ``job_id`` is a training job that has not finished (its own trials)."""
    from loopml.store.jobs import TRAINING, JobStore

    jobs = JobStore(settings.database)
    try:
        job = jobs.find(job_id)
    finally:
        jobs.close()
    if job is None or job.kind != TRAINING:
        raise MessageError(f"trial task for study {name}: no training job {job_id} is recorded")
    if job.finished:
        raise MessageError(
            f"trial task for study {name}: job {job_id} is {job.status}; "
            "trials only run for a job that is still running"
        )


def _load_study(settings: Settings, name: str) -> Any:
    """The study ``name``; a :class:`MessageError` when there is none (or no study at all yet)."""
    import optuna

    if not _schema_exists(settings):  # Optuna would fail on its missing version table
        raise MessageError(f"no tuning study {name} exists (no study was ever created)")
    try:
        return optuna.load_study(study_name=name, storage=storage(settings, create=False))
    except KeyError as error:
        raise MessageError(f"no tuning study {name} exists") from error


def _schema_exists(settings: Settings) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(_url(settings.database), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text(f"SELECT to_regclass('{SCHEMA}.version_info')"))
            return found.scalar() is not None
    finally:
        engine.dispose()


def _plan(raw: Any, name: str) -> Any:
    from loopml.automl.trials import Plan

    try:
        plan = Plan.from_json(raw)
        if not isinstance(plan.n_iter, int) or plan.n_iter < 1:
            raise ValueError(f"n_iter {plan.n_iter!r}")
    except (TypeError, ValueError) as error:
        raise MessageError(f"study {name} holds a plan that cannot be read: {error}") from error
    return plan


def _folds(settings: Settings, bundle: Any, name: str) -> Any:
    """The job's prepared folds, downloaded once per worker process and checked by hash.

    The expected SHA-256 is the one the job wrote on the study in the database
    (never anything a message says), and the bytes are compared before joblib
    (pickle) sees them; what is loaded is the very bytes that were checked.
    """
    import io

    import joblib

    from loopml.registry.tracking import use_tracking

    fields = ("run_id", "path", "sha256")
    if not isinstance(bundle, dict) or not all(isinstance(bundle.get(k), str) for k in fields):
        raise MessageError(f"study {name}: the record of its folds is malformed")
    digest = bundle["sha256"]
    with _cache_lock:
        if digest in _cache:
            return _cache[digest]
    mlflow = use_tracking(settings)
    where = f"{bundle['path']} of run {bundle['run_id']}"
    with tempfile.TemporaryDirectory(prefix="loopml-folds-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=bundle["run_id"], artifact_path=bundle["path"], dst_path=folder
            )
            raw = Path(local).read_bytes()
        except (mlflow.exceptions.MlflowException, OSError) as error:
            raise MessageError(
                f"study {name}: the prepared folds {where} cannot be fetched: "
                f"{type(error).__name__}"
            ) from error
    if hashlib.sha256(raw).hexdigest() != digest:
        raise MessageError(
            f"study {name}: the prepared folds {where} do not match the SHA-256 recorded "
            "with the study; refusing to load them"
        )
    data = joblib.load(io.BytesIO(raw))
    with _cache_lock:
        _cache.clear()
        _cache[digest] = data
    return data
