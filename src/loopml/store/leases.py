"""The monitor lease: one monitoring process at a time per model, across machines.

A scheduled monitor may run as several replicas (a Deployment with two pods, a cron job
next to a person's ``loopml monitor``). Each model has one lease row; a process runs a
pass only while it holds that row. Taking it is one conditional ``UPDATE`` (free, expired,
or already mine), so of two processes racing for it exactly one wins; the holder renews
it while it lives, and when it dies without releasing, the lease expires and another
replica takes over. Every pass is recorded with its holder, so "never two at once" can
be checked after the fact (:meth:`LeaseStore.passes`).

Expiry uses the processes' clocks (UTC): keep the hosts' clocks in sync (NTP); skew
between two hosts shortens or lengthens the lease by that much.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import DateTime, Integer, String
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.clock import now as utc_now
from loopml.store.clock import utc
from loopml.store.db import connect
from loopml.store.tables import Base

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


class MonitorLease(Base):
    """Who may run monitoring passes of one model, and until when."""

    __tablename__ = "monitor_leases"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MonitorPassRow(Base):
    """One monitoring pass: which process ran it, when, and how it ended."""

    __tablename__ = "monitor_passes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    holder: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class LeaseView:
    """The lease of one model as stored."""

    model_name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PassView:
    """One recorded pass."""

    id: int
    model_name: str
    holder: str
    status: str
    started_at: datetime
    finished_at: datetime | None


class LeaseStore:
    """Takes, renews and releases monitor leases; records passes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> LeaseStore:
        return cls(connect(url))

    def acquire(self, model_name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew the lease for ``ttl``; ``False`` while another live holder has it."""
        moment = utc_now()
        lease = MonitorLease
        taken = (
            sa.update(lease)
            .where(
                lease.model_name == model_name,
                sa.or_(lease.holder == holder, lease.expires_at < moment),
            )
            .values(
                holder=holder,
                expires_at=moment + ttl,
                acquired_at=sa.case((lease.holder == holder, lease.acquired_at), else_=moment),
            )
        )
        with self.engine.begin() as connection:
            if connection.execute(taken).rowcount == 1:
                return True
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    sa.insert(MonitorLease).values(
                        model_name=model_name,
                        holder=holder,
                        acquired_at=moment,
                        expires_at=moment + ttl,
                    )
                )
        except IntegrityError:  # the row exists: another holder has a live lease
            return False
        return True

    def release(self, model_name: str, holder: str) -> bool:
        """Let the lease go now (if ``holder`` still has it), so another takes over at once."""
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(MonitorLease)
                .where(MonitorLease.model_name == model_name, MonitorLease.holder == holder)
                .values(expires_at=utc_now())
            )
        return bool(result.rowcount == 1)

    def lease(self, model_name: str) -> LeaseView | None:
        table = MonitorLease.__table__
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(table).where(table.c.model_name == model_name))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return LeaseView(
            model_name=row["model_name"],
            holder=row["holder"],
            acquired_at=utc(row["acquired_at"]),
            expires_at=utc(row["expires_at"]),
        )

    def start_pass(self, model_name: str, holder: str) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.insert(MonitorPassRow).values(
                    model_name=model_name, holder=holder, status=RUNNING, started_at=utc_now()
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_pass(self, pass_id: int, status: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(MonitorPassRow)
                .where(MonitorPassRow.id == pass_id)
                .values(status=status, finished_at=utc_now())
            )

    def passes(self, model_name: str) -> list[PassView]:
        """Recorded passes of ``model_name``, oldest first."""
        table = MonitorPassRow.__table__
        query = sa.select(table).where(table.c.model_name == model_name).order_by(table.c.id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            PassView(
                id=row["id"],
                model_name=row["model_name"],
                holder=row["holder"],
                status=row["status"],
                started_at=utc(row["started_at"]),
                finished_at=utc(row["finished_at"]),
            )
            for row in rows
        ]

    def close(self) -> None:
        self.engine.dispose()
