"""Jobs: work sent to the queue (a training spec or a batch scoring), and how it is going.

Workers write status, progress and results here rather than to a Celery result
backend, so ``loopml jobs`` and ``GET /jobs`` work with any broker, from any
machine that reaches the metadata store. Every write is keyed by the job id,
which makes a redelivered message safe: the worker finds the row, sees what
the previous attempt left, and carries on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loopml.core.errors import JobNotFoundError
from loopml.core.status import FINISHED, Status
from loopml.store.clock import now
from loopml.store.session import TableStore, view_of
from loopml.store.tables import Base

TRAINING, BATCH = "training", "batch"


class Job(Base):
    """One submitted job. For training jobs ``id`` is also the pipeline run's id."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    queue: Mapped[str] = mapped_column(String(255))
    spec_text: Mapped[str | None] = mapped_column(Text)
    spec_source: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(255))
    submitted_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(32))
    current_step: Mapped[str | None] = mapped_column(String(255))
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int | None] = mapped_column(Integer)
    registered_name: Mapped[str | None] = mapped_column(String(255))
    registered_version: Mapped[str | None] = mapped_column(String(32))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass(frozen=True)
class JobView:
    """A job as recorded, detached from the database."""

    id: str
    kind: str
    status: str
    queue: str
    spec_text: str | None
    spec_source: str | None
    model_name: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    attempts: int
    worker: str | None
    run_id: str | None
    current_step: str | None
    steps_done: int
    steps_total: int | None
    registered_name: str | None
    registered_version: str | None
    cancel_requested: bool
    error: str | None
    details: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the API; the spec text is left out (``GET /jobs/{id}`` has it)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "queue": self.queue,
            "spec_source": self.spec_source,
            "model_name": self.model_name,
            "submitted_at": self.submitted_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": self.duration_s,
            "attempts": self.attempts,
            "worker": self.worker,
            "run_id": self.run_id,
            "progress": {
                "current_step": self.current_step,
                "steps_done": self.steps_done,
                "steps_total": self.steps_total,
            },
            "registered_model": (
                None
                if self.registered_name is None
                else {"name": self.registered_name, "version": self.registered_version}
            ),
            "cancel_requested": self.cancel_requested,
            "error": self.error,
            "details": self.details,
        }


class JobStore(TableStore):
    """The ``jobs`` table of the metadata store at ``url``."""

    table = Job
    noun, listing, missing = "job", "loopml jobs list", JobNotFoundError

    def create(
        self,
        job_id: str,
        *,
        kind: str,
        queue: str,
        spec_text: str | None = None,
        spec_source: str | None = None,
        model_name: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> JobView:
        """Record a job as queued; an existing row with that id is kept as it is."""
        with self._session() as session, session.begin():
            job = session.get(Job, job_id)
            if job is None:
                job = Job(
                    id=job_id,
                    kind=kind,
                    status=Status.QUEUED,
                    queue=queue,
                    spec_text=spec_text,
                    spec_source=spec_source,
                    model_name=model_name,
                    submitted_at=now(),
                    attempts=0,
                    steps_done=0,
                    cancel_requested=False,
                    details=details or {},
                )
                session.add(job)
                try:
                    session.flush()
                except sa.exc.IntegrityError:  # another process created it a moment ago
                    session.rollback()
                    return self.get(job_id)
            return _view(job)

    def start_attempt(self, job_id: str, worker: str) -> JobView:
        """Count one more delivery of the job to ``worker``; the job as it was before it.

        Finished jobs are left untouched, so a late duplicate delivery sees
        the final status and does nothing.
        """
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            before = _view(job)
            if job.status not in FINISHED:
                job.attempts += 1
                job.worker = worker
                job.status = Status.RUNNING
                job.error = None
                job.started_at = job.started_at or now()
            return before

    def progress(self, job_id: str, **fields: Any) -> None:
        """Set facts learned while running (run id, model, current step, steps done or total)."""
        allowed = {"run_id", "model_name", "current_step", "steps_done", "steps_total", "details"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on a job")
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            for name, value in fields.items():
                setattr(job, name, value)

    def note_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Keep the running step's latest progress in ``details["progress"]`` (others kept)."""
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            job.details = {**(job.details or {}), "progress": progress}

    def merge_details(self, job_id: str, values: dict[str, Any]) -> None:
        """Add ``values`` to the job's details, keeping its other keys."""
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            job.details = {**(job.details or {}), **values}

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        error: str | None = None,
        registered: tuple[str, str] | None = None,
    ) -> None:
        """Record how the job ended; a job that already ended keeps its first ending.

        ``registered`` is the (model name, version) the job's run registered.
        """
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            if job.status in FINISHED:
                return
            job.status = status
            job.error = error
            job.ended_at = now()
            if registered is not None:
                job.registered_name, job.registered_version = registered
            if status == Status.SUCCEEDED:
                job.current_step = None

    def reject(
        self, job_id: str, *, kind: str, queue: str, reason: str, details: dict[str, Any]
    ) -> JobView:
        """Record that a message naming ``job_id`` was dead-lettered, and why.

        A job that had not ended yet ends ``rejected``; one that had ended keeps
        its ending (a late malformed duplicate cannot undo a finished job). In
        both cases the rejection is added to ``details["rejections"]``, so every
        poison message naming a job leaves a trace. Creates the row when no
        client recorded the job (a client in another language, or garbage).
        """
        entry = {**details, "reason": reason, "at": now().isoformat()}
        self.create(job_id, kind=kind, queue=queue)
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            rejections = list((job.details or {}).get("rejections", []))[-9:]
            job.details = {**(job.details or {}), "rejections": [*rejections, entry]}
            if job.status not in FINISHED:
                job.status = Status.REJECTED
                job.error = f"dead-lettered: {reason}"
                job.ended_at = now()
            return _view(job)

    def requeue(self, job_id: str, *, note: dict[str, Any]) -> JobView:
        """Put a failed (or cancelled, rejected, queued) job back in the queue to resume its run.

        Its deliveries count from zero again; ``note`` (who asked, when) is added to
        ``details["resumes"]``. A running or succeeded job is left as it is.
        """
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            if job.status in (Status.RUNNING, Status.SUCCEEDED):
                return _view(job)
            resumes = list((job.details or {}).get("resumes", []))[-9:]
            job.details = {**(job.details or {}), "resumes": [*resumes, note]}
            job.status = Status.QUEUED
            job.error = None
            job.ended_at = None
            job.attempts = 0
            job.cancel_requested = False
            return _view(job)

    def request_cancel(self, job_id: str) -> JobView:
        """Ask for the job to stop: a queued job is cancelled now, a running one between steps."""
        with self._session() as session, session.begin():
            job = self._get(session, job_id, lock=True)
            if job.status in FINISHED:
                return _view(job)
            job.cancel_requested = True
            if job.status == Status.QUEUED:
                job.status = Status.CANCELLED
                job.ended_at = now()
                job.error = "cancelled before it started"
            return _view(job)

    def cancel_requested(self, job_id: str) -> bool:
        with self._session() as session:
            return bool(
                session.scalar(sa.select(Job.cancel_requested).where(Job.id == job_id)) or False
            )

    def get(self, job_id: str) -> JobView:
        """The job ``job_id`` (a unique prefix of at least 6 characters is enough)."""
        with self._session() as session:
            return _view(self._get(session, job_id))

    def find(self, job_id: str) -> JobView | None:
        with self._session() as session:
            job = session.get(Job, job_id)
            return None if job is None else _view(job)

    def list(
        self, *, limit: int = 20, status: str | None = None, kind: str | None = None
    ) -> list[JobView]:
        """The newest jobs first."""
        query = sa.select(Job)
        if status is not None:
            query = query.where(Job.status == status)
        if kind is not None:
            query = query.where(Job.kind == kind)
        query = query.order_by(Job.submitted_at.desc()).limit(limit)
        with self._session() as session:
            return [_view(job) for job in session.scalars(query)]


def _view(job: Job) -> JobView:
    return view_of(job, JobView, cancel_requested=bool(job.cancel_requested))
