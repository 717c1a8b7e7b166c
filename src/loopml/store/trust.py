"""Trust records of registered versions: the hash loopml saw at registration, and approvals.

The authority on which model files may be loaded (``loopml.registry.trust``
judges with it): an MLflow version tag can be edited by anyone with registry
access, these rows only by whoever can write loopml's metadata store.
``registered_versions`` holds one row per version registered through loopml
(hash, registrar, when); ``version_approvals`` is append-only, the newest
approval of a version counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from loopml.core.errors import StoreError
from loopml.store.clock import now
from loopml.store.session import TableStore, view_of
from loopml.store.tables import Base


class RegisteredVersionRow(Base):
    """A version registered through loopml, with the content hash of its artifacts then."""

    __tablename__ = "registered_versions"

    model_name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    registrar: Mapped[str] = mapped_column(sa.String(255))
    source: Mapped[str] = mapped_column(sa.Text)
    run_id: Mapped[str | None] = mapped_column(sa.String(32))
    registered_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class VersionApprovalRow(Base):
    """A person's decision to trust a version's files as they hashed at that moment."""

    __tablename__ = "version_approvals"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    version: Mapped[str] = mapped_column(sa.String(32))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    actor: Mapped[str] = mapped_column(sa.String(255))
    reason: Mapped[str] = mapped_column(sa.Text)
    approved_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (sa.Index("ix_version_approvals_model", "model_name", "version"),)


@dataclass(frozen=True)
class Registration:
    """What loopml recorded when it registered a version."""

    model_name: str
    version: str
    sha256: str
    registrar: str
    source: str
    run_id: str | None
    registered_at: datetime


@dataclass(frozen=True)
class Approval:
    """One recorded approval of a version's files."""

    model_name: str
    version: str
    sha256: str
    actor: str
    reason: str
    approved_at: datetime


class TrustTable(TableStore):
    """Registration records and approvals in the metadata store at ``url``.

    An engine handed in is the caller's and is left open by :meth:`close`.
    """

    def __init__(self, url: str | Engine) -> None:
        super().__init__(url)
        self._owned = not isinstance(url, Engine)

    def close(self) -> None:
        if self._owned:
            super().close()

    def __enter__(self) -> TrustTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_registration(
        self,
        *,
        model_name: str,
        version: str,
        sha256: str,
        registrar: str,
        source: str,
        run_id: str | None = None,
    ) -> Registration:
        """Record a version loopml registered. A version is registered once: a second record
        with another hash is refused rather than overwriting what was trusted."""
        row = RegisteredVersionRow(
            model_name=model_name,
            version=version,
            sha256=sha256,
            registrar=registrar,
            source=source,
            run_id=run_id,
            registered_at=now(),
        )
        try:
            with self._sessions() as session, session.begin():
                session.add(row)
        except sa.exc.IntegrityError as exc:
            existing = self.registration(model_name, version)
            if existing is not None and existing.sha256 == sha256:
                return existing
            raise StoreError(
                f"model {model_name!r} version {version} is already recorded as registered with "
                f"other artifacts (sha256 {existing.sha256 if existing else '?'}); the record "
                "is kept"
            ) from exc
        return _registration(row)

    def registration(self, name: str, version: str) -> Registration | None:
        with self._sessions() as session:
            row = session.get(RegisteredVersionRow, (name, version))
            return None if row is None else _registration(row)

    def approve(
        self, *, model_name: str, version: str, sha256: str, actor: str, reason: str
    ) -> Approval:
        """Append an approval of the files hashing to ``sha256``."""
        row = VersionApprovalRow(
            model_name=model_name,
            version=version,
            sha256=sha256,
            actor=actor,
            reason=reason,
            approved_at=now(),
        )
        with self._sessions() as session, session.begin():
            session.add(row)
        return _approval(row)

    def approval(self, name: str, version: str) -> Approval | None:
        """The newest approval of version ``version`` of ``name``, if any."""
        query = (
            sa.select(VersionApprovalRow)
            .where(VersionApprovalRow.model_name == name, VersionApprovalRow.version == version)
            .order_by(VersionApprovalRow.approved_at.desc(), VersionApprovalRow.id.desc())
            .limit(1)
        )
        with self._sessions() as session:
            row = session.scalars(query).first()
            return None if row is None else _approval(row)


def _registration(row: RegisteredVersionRow) -> Registration:
    return view_of(row, Registration)


def _approval(row: VersionApprovalRow) -> Approval:
    return view_of(row, Approval)
