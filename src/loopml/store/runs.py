"""Reading and writing pipeline runs and step attempts.

Callers get plain frozen views, never live ORM objects, so nothing they hold
can lazily hit the database after the session is gone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from loopml.core.context import GateDecision, RegisteredModel
from loopml.core.errors import RunNotFoundError
from loopml.core.status import Status
from loopml.store.clock import now, utc
from loopml.store.session import TableStore, view_of
from loopml.store.tables import PipelineRun, StepRun


@dataclass(frozen=True)
class StepView:
    """One attempt at one step, as recorded."""

    position: int
    name: str
    attempt: int
    status: str
    params: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    error: str | None
    host: str
    outputs: dict[str, Any]


@dataclass(frozen=True)
class RunView:
    """One pipeline run with all its step attempts in order."""

    id: str
    status: str
    experiment_name: str
    model_name: str
    spec_text: str
    spec_hash: str
    spec_source: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    executor: str
    host: str
    user: str
    loopml_version: str
    git_commit: str | None
    data_fingerprint: str | None
    mlflow_experiment_id: str | None
    mlflow_run_id: str | None
    attempts: int
    error: str | None
    traceback: str | None
    values: dict[str, Any]
    steps: tuple[StepView, ...] = field(default_factory=tuple)
    seed: int | None = None
    smoke: bool = False
    code_hash: str | None = None
    environment_hash: str | None = None
    reproducibility: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def registered(self) -> RegisteredModel | None:
        """The registry version this run produced (name and version), if it registered one."""
        return RegisteredModel.from_record(self.values.get("registered"))

    @property
    def gate(self) -> GateDecision | None:
        """What the run's champion/challenger gate decided, if it had a ``validate_model`` step."""
        return GateDecision.from_record(self.values.get("gate"))

    def latest_steps(self) -> dict[int, StepView]:
        """The newest attempt of each step position."""
        latest: dict[int, StepView] = {}
        for view in self.steps:
            latest[view.position] = view
        return latest


@dataclass(frozen=True)
class Provenance:
    """Where and by what a run executes."""

    executor: str
    host: str
    user: str
    loopml_version: str
    git_commit: str | None


@dataclass(frozen=True)
class Reproducibility:
    """What re-running a run needs: its seed and threads, smoke or not, code and environment.

    ``detail`` is JSON: ``threads``, ``loopml_git_commit``, ``code`` (the
    per-file manifest), ``environment`` (distributions, Python, platform),
    ``reproduces`` (the run a reproduction re-ran).
    """

    seed: int | None
    smoke: bool
    code_hash: str
    environment_hash: str
    detail: dict[str, Any]


class RunStore(TableStore):
    """The runs and steps of every pipeline, in the database at ``url``."""

    table = PipelineRun
    noun, listing, missing = "run", "loopml runs list", RunNotFoundError

    def create_run(
        self,
        *,
        spec_text: str,
        spec_hash: str,
        spec_source: str | None,
        experiment_name: str,
        model_name: str,
        provenance: Provenance,
        run_id: str | None = None,
        reproducibility: Reproducibility | None = None,
    ) -> str:
        """Record a new run about to start; its id."""
        new_id = run_id or uuid.uuid4().hex
        with self._session() as session, session.begin():
            session.add(
                PipelineRun(
                    id=new_id,
                    spec_text=spec_text,
                    spec_hash=spec_hash,
                    spec_source=spec_source,
                    experiment_name=experiment_name,
                    model_name=model_name,
                    status=Status.RUNNING,
                    created_at=now(),
                    started_at=now(),
                    executor=provenance.executor,
                    host=provenance.host,
                    user=provenance.user,
                    loopml_version=provenance.loopml_version,
                    git_commit=provenance.git_commit,
                    attempts=1,
                    values={},
                    **_reproducibility_columns(reproducibility),
                )
            )
        return new_id

    def record_reproducibility(self, run_id: str, reproducibility: Reproducibility) -> None:
        """Replace what a run records for reproduction (a resume, or new code paths mid-run)."""
        with self._session() as session, session.begin():
            run = self._get(session, run_id)
            for name, value in _reproducibility_columns(reproducibility).items():
                setattr(run, name, value)

    def reopen_run(self, run_id: str, provenance: Provenance) -> None:
        """Mark a failed run running again for a resume attempt.

        Step attempts still ``running`` belong to an attempt that never came
        back (its worker was killed, or lost its connection and was stopped):
        they are closed as failed with that said, so the run's history shows
        no attempt running that nothing runs, and the new attempt's rows
        follow them.
        """
        with self._session() as session, session.begin():
            run = self._get(session, run_id)
            self._abandon_steps(session, run, provenance)
            run.status = Status.RUNNING
            run.error = None
            run.traceback = None
            run.ended_at = None
            run.attempts += 1
            run.executor = provenance.executor
            run.host = provenance.host
            run.user = provenance.user

    @staticmethod
    def _abandon_steps(session: Session, run: PipelineRun, provenance: Provenance) -> None:
        leftovers = session.scalars(
            sa.select(StepRun)
            .where(StepRun.run_id == run.id, StepRun.status == Status.RUNNING)
            .with_for_update()
        ).all()
        for step in leftovers:
            step.status = Status.FAILED
            step.ended_at = now()
            step.error = (
                f"abandoned: run attempt {run.attempts} ({run.executor} on {run.host}) stopped "
                f"during this step without recording an end; closed when attempt "
                f"{run.attempts + 1} ({provenance.executor}) resumed the run"
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set facts learned while running (MLflow ids, data fingerprint, values)."""
        allowed = {"mlflow_experiment_id", "mlflow_run_id", "data_fingerprint", "values"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)} on a run")
        with self._session() as session, session.begin():
            run = self._get(session, run_id)
            for name, value in fields.items():
                setattr(run, name, value)

    def finish_run(
        self, run_id: str, status: str, *, error: str | None = None, traceback: str | None = None
    ) -> None:
        with self._session() as session, session.begin():
            run = self._get(session, run_id)
            run.status = status
            run.error = error
            run.traceback = traceback
            run.ended_at = now()

    def start_step(
        self, run_id: str, position: int, name: str, params: dict[str, Any], host: str
    ) -> int:
        """Record the start of an attempt at a step; the attempt's row id."""
        with self._session() as session, session.begin():
            previous = session.scalar(
                sa.select(sa.func.max(StepRun.attempt)).where(
                    StepRun.run_id == run_id, StepRun.position == position
                )
            )
            row = StepRun(
                run_id=run_id,
                position=position,
                name=name,
                attempt=(previous or 0) + 1,
                params=params,
                status=Status.RUNNING,
                started_at=now(),
                host=host,
                outputs={},
            )
            session.add(row)
            session.flush()
            return row.id

    def finish_step(
        self,
        step_id: int,
        status: str,
        *,
        outputs: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self._session() as session, session.begin():
            row = session.get(StepRun, step_id)
            if row is None:
                raise RunNotFoundError(f"no step attempt with id {step_id}")
            row.status = status
            row.ended_at = now()
            row.duration_s = (row.ended_at - utc(row.started_at)).total_seconds()
            row.error = error
            row.outputs = outputs or {}

    def find_run(self, run_id: str) -> RunView | None:
        """The run with exactly the id ``run_id``, or ``None`` (no prefix matching)."""
        with self._session() as session:
            run = session.get(PipelineRun, run_id)
            return None if run is None else _view(run)

    def get_run(self, run_id: str) -> RunView:
        """The run ``run_id`` (a unique prefix of at least 6 characters is enough)."""
        with self._session() as session:
            return _view(self._get(session, run_id))

    def list_runs(
        self, *, limit: int = 20, status: str | None = None, model_name: str | None = None
    ) -> list[RunView]:
        """The newest runs first."""
        query = sa.select(PipelineRun).options(selectinload(PipelineRun.steps))
        if status is not None:
            query = query.where(PipelineRun.status == status)
        if model_name is not None:
            query = query.where(PipelineRun.model_name == model_name)
        query = query.order_by(PipelineRun.created_at.desc()).limit(limit)
        with self._session() as session:
            return [_view(run) for run in session.scalars(query)]


def _reproducibility_columns(found: Reproducibility | None) -> dict[str, Any]:
    if found is None:
        return {}
    return {
        "seed": found.seed,
        "smoke": found.smoke,
        "code_hash": found.code_hash,
        "environment_hash": found.environment_hash,
        "reproducibility": found.detail,
    }


def _view(run: PipelineRun) -> RunView:
    steps = tuple(view_of(step, StepView) for step in run.steps)
    return view_of(run, RunView, steps=steps)
