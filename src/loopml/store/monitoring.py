"""Monitoring state in the metadata store: checks with their figures, and the retrain guard.

The guard lives here rather than in a monitor's memory so that two monitor
processes (a cron job and a person running ``loopml monitor``) agree on
whether a retrain is in flight and when the cool-down ends: claiming it is
one conditional ``UPDATE``, which only one of them can win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from loopml.core.status import Status
from loopml.store.clock import utc
from loopml.store.db import connect
from loopml.store.tables import Base

OK, ALERT = "ok", "alert"


class MonitorCheck(Base):
    """One check (data drift, schema skew, performance...) of one window of the prediction log."""

    __tablename__ = "monitor_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor_run_id: Mapped[str] = mapped_column(String(32), index=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    model_version: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    window_index: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    rows: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RetrainGuard(Base):
    """Per model: the retrain in flight (if any) and when the last one was asked for."""

    __tablename__ = "retrain_guards"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    in_flight_id: Mapped[str | None] = mapped_column(String(32))
    in_flight_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RetrainRequest(Base):
    """The history of retrains the monitor started, and how each ended."""

    __tablename__ = "retrain_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class CheckView:
    """A stored check, as plain data."""

    monitor_run_id: str
    model_name: str
    model_version: str | None
    kind: str
    status: str
    window_index: int
    window_start: datetime
    window_end: datetime
    rows: int
    complete: bool
    figures: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class RetrainView:
    """One retrain request, as plain data."""

    id: str
    model_name: str
    reason: str
    status: str
    requested_at: datetime
    finished_at: datetime | None
    job_id: str | None
    error: str | None


@dataclass(frozen=True)
class Claim:
    """The answer to "may I start a retrain now?": the request id, or why not."""

    request_id: str | None
    blocked_by: str | None = None

    @property
    def granted(self) -> bool:
        return self.request_id is not None


class MonitorStore:
    """Reads and writes monitoring checks and the retrain guard."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> MonitorStore:
        return cls(connect(url))

    def add_checks(self, checks: Sequence[CheckView]) -> None:
        """Store ``checks`` in one transaction."""
        if not checks:
            return
        rows = [
            {name: getattr(check, name) for name in CheckView.__dataclass_fields__}
            for check in checks
        ]
        with self.engine.begin() as connection:
            connection.execute(sa.insert(MonitorCheck), rows)

    def checks(
        self, model_name: str, *, kind: str | None = None, monitor_run_id: str | None = None
    ) -> list[CheckView]:
        """Stored checks of ``model_name`` in window order."""
        table = MonitorCheck.__table__
        query = sa.select(table).where(table.c.model_name == model_name)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        if monitor_run_id is not None:
            query = query.where(table.c.monitor_run_id == monitor_run_id)
        query = query.order_by(table.c.window_end, table.c.window_index, table.c.id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            CheckView(
                **{
                    name: row[name]
                    for name in CheckView.__dataclass_fields__
                    if name not in ("window_start", "window_end", "created_at")
                },
                window_start=utc(row["window_start"]),
                window_end=utc(row["window_end"]),
                created_at=utc(row["created_at"]),
            )
            for row in rows
        ]

    def last_complete_window_end(self, model_name: str) -> datetime | None:
        """Where an incremental monitor resumes: the end of the newest complete window checked."""
        table = MonitorCheck.__table__
        query = sa.select(sa.func.max(table.c.window_end)).where(
            table.c.model_name == model_name, table.c.complete.is_(True)
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar_one_or_none()
        return utc(found) if found is not None else None

    def complete_windows(self, model_name: str) -> int:
        """How many complete windows of ``model_name`` were checked: the next window's number."""
        table = MonitorCheck.__table__
        windows = (
            sa.select(table.c.window_start, table.c.window_end)
            .where(table.c.model_name == model_name, table.c.complete.is_(True))
            .distinct()
            .subquery()
        )
        with self.engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(windows)).scalar_one()
            )

    def claim_retrain(
        self,
        model_name: str,
        reason: str,
        *,
        cooldown: timedelta,
        stale_after: timedelta,
        now: datetime | None = None,
    ) -> Claim:
        """Take the model's retrain slot if none is in flight and the cool-down has passed.

        A retrain in flight for longer than ``stale_after`` is presumed lost
        (its worker died without reporting) and no longer blocks.
        """
        now = now or datetime.now(UTC)
        request_id = uuid.uuid4().hex
        guards = RetrainGuard.__table__
        with self.engine.begin() as connection:
            _insert_guard_if_missing(connection, model_name)
            claimed = connection.execute(
                sa.update(RetrainGuard)
                .where(
                    RetrainGuard.model_name == model_name,
                    sa.or_(
                        RetrainGuard.in_flight_id.is_(None),
                        RetrainGuard.in_flight_since < now - stale_after,
                    ),
                    sa.or_(
                        RetrainGuard.last_requested_at.is_(None),
                        RetrainGuard.last_requested_at <= now - cooldown,
                    ),
                )
                .values(in_flight_id=request_id, in_flight_since=now, last_requested_at=now)
            )
            if claimed.rowcount == 1:
                connection.execute(
                    sa.insert(RetrainRequest),
                    {
                        "id": request_id,
                        "model_name": model_name,
                        "reason": reason,
                        "status": Status.REQUESTED,
                        "requested_at": now,
                    },
                )
                return Claim(request_id)
            guard = connection.execute(
                sa.select(guards).where(guards.c.model_name == model_name)
            ).one()
        return Claim(None, blocked_by=_why_blocked(guard, now, cooldown, stale_after))

    def record_job(self, request_id: str, job_id: str | None) -> None:
        """Remember which queued job carries the retrain."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(RetrainRequest).where(RetrainRequest.id == request_id),
                {"job_id": job_id},
            )

    def finish_retrain(self, request_id: str, *, error: str | None = None) -> None:
        """Close a retrain request and free the model's slot (the cool-down still applies)."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            model_name = connection.execute(
                sa.select(RetrainRequest.model_name).where(RetrainRequest.id == request_id)
            ).scalar_one_or_none()
            if model_name is None:
                return
            connection.execute(
                sa.update(RetrainRequest).where(RetrainRequest.id == request_id),
                {
                    "status": Status.FAILED if error else Status.SUCCEEDED,
                    "finished_at": now,
                    "error": error,
                },
            )
            connection.execute(
                sa.update(RetrainGuard).where(
                    RetrainGuard.model_name == model_name, RetrainGuard.in_flight_id == request_id
                ),
                {"in_flight_id": None, "in_flight_since": None},
            )

    def retrains(self, model_name: str) -> list[RetrainView]:
        """Every retrain request of ``model_name``, oldest first."""
        table = RetrainRequest.__table__
        query = (
            sa.select(table)
            .where(table.c.model_name == model_name)
            .order_by(table.c.requested_at, table.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            RetrainView(
                id=row["id"],
                model_name=row["model_name"],
                reason=row["reason"],
                status=row["status"],
                requested_at=utc(row["requested_at"]),
                finished_at=utc(row["finished_at"]) if row["finished_at"] else None,
                job_id=row["job_id"],
                error=row["error"],
            )
            for row in rows
        ]


def _insert_guard_if_missing(connection: sa.Connection, model_name: str) -> None:
    statement: Any
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(RetrainGuard).on_conflict_do_nothing(index_elements=["model_name"])
    elif connection.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(RetrainGuard).on_conflict_do_nothing(
            index_elements=["model_name"]
        )
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported stores
        exists = connection.execute(
            sa.select(RetrainGuard.model_name).where(RetrainGuard.model_name == model_name)
        ).first()
        if exists:
            return
        statement = sa.insert(RetrainGuard)
    connection.execute(statement, {"model_name": model_name})


def _why_blocked(
    guard: sa.Row[Any], now: datetime, cooldown: timedelta, stale_after: timedelta
) -> str:
    if guard.in_flight_id is not None and utc(guard.in_flight_since) >= now - stale_after:
        since = utc(guard.in_flight_since)
        return f"retrain {guard.in_flight_id} in flight since {since:%Y-%m-%d %H:%M:%S} UTC"
    until = utc(guard.last_requested_at) + cooldown
    return f"cool-down until {until:%Y-%m-%d %H:%M:%S} UTC"


__all__ = [
    "ALERT",
    "OK",
    "CheckView",
    "Claim",
    "MonitorCheck",
    "MonitorStore",
    "RetrainGuard",
    "RetrainRequest",
    "RetrainView",
    "utc",
]
