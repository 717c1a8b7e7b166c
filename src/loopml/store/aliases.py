"""The alias log: every move of a registered model's aliases, who made it, when and why.

MLflow keeps only where an alias points now; this table keeps where it
pointed before, so "what served on date X" has an answer and a rollback knows
where to go back to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from loopml.store.session import TableStore, view_of
from loopml.store.tables import Base


class AliasMoveRow(Base):
    """One alias move; ``to_version`` ``None`` means the alias was removed."""

    __tablename__ = "alias_moves"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    alias: Mapped[str] = mapped_column(sa.String(64))
    from_version: Mapped[str | None] = mapped_column(sa.String(32))
    to_version: Mapped[str | None] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(255))
    reason: Mapped[str] = mapped_column(sa.Text)
    run_id: Mapped[str | None] = mapped_column(sa.String(32))
    moved_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class AliasMoveView:
    """One recorded alias move."""

    id: int
    model_name: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    run_id: str | None
    moved_at: datetime


def _view(row: AliasMoveRow) -> AliasMoveView:
    return view_of(row, AliasMoveView)


class AliasLog(TableStore):
    """Append-only record of alias moves in the metadata store at ``url``."""

    def record(
        self,
        *,
        model_name: str,
        alias: str,
        from_version: str | None,
        to_version: str | None,
        actor: str,
        reason: str,
        run_id: str | None = None,
        moved_at: datetime | None = None,
    ) -> AliasMoveView:
        """Append one move; its recorded view."""
        row = AliasMoveRow(
            model_name=model_name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            run_id=run_id,
            moved_at=moved_at or datetime.now(UTC),
        )
        with self._sessions() as session, session.begin():
            session.add(row)
            session.flush()
            return _view(row)

    def moves(
        self,
        model_name: str,
        *,
        alias: str | None = None,
        until: datetime | None = None,
    ) -> list[AliasMoveView]:
        """Moves of ``model_name`` (optionally one alias, up to ``until``), oldest first."""
        query = sa.select(AliasMoveRow).where(AliasMoveRow.model_name == model_name)
        if alias is not None:
            query = query.where(AliasMoveRow.alias == alias)
        if until is not None:
            query = query.where(AliasMoveRow.moved_at <= until)
        query = query.order_by(AliasMoveRow.moved_at, AliasMoveRow.id)
        with self._sessions() as session:
            return [_view(row) for row in session.scalars(query)]

    def version_at(self, model_name: str, alias: str, at: datetime) -> str | None:
        """The version ``model_name@alias`` pointed at, at moment ``at`` (per the log)."""
        moves = self.moves(model_name, alias=alias, until=at)
        return moves[-1].to_version if moves else None
