"""What every table accessor of the metadata store shares: its engine, sessions, id lookups.

``RunStore``, ``JobStore`` and the other accessors each own one table (or a
few) and differ only in their rows; opening the engine, making sessions and
finding a row by its id or a unique prefix of it (what ``loopml runs show
3f2a9c`` relies on) are written once here.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from loopml.core.errors import LoopmlError
from loopml.store.clock import utc
from loopml.store.db import connect

Row = TypeVar("Row")
View = TypeVar("View")

MIN_PREFIX = 6
"""The shortest id prefix accepted as a name for a row."""


class TableStore:
    """An engine on the metadata store at ``url`` (migrated on open) and its sessions.

    A store whose rows are named by id sets ``table`` (the ORM class),
    ``noun``, ``listing`` (the command that lists ids) and ``missing`` (the
    error), and gets :meth:`_get`, the id-or-prefix lookup.
    """

    table: Any = None
    noun: str = "row"
    listing: str = "loopml"
    missing: type[LoopmlError] = LoopmlError

    def __init__(self, url: str | Engine) -> None:
        self.engine = url if isinstance(url, Engine) else connect(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    def _get(self, session: Session, key: str, *, lock: bool = False) -> Any:
        """The row of :attr:`table` named by ``key`` (see :func:`row_by_id`)."""
        return row_by_id(
            session,
            self.table,
            key,
            noun=self.noun,
            listing=self.listing,
            missing=self.missing,
            lock=lock,
        )


def row_by_id(
    session: Session,
    table: type[Row],
    key: str,
    *,
    noun: str,
    listing: str,
    missing: type[LoopmlError],
    lock: bool = False,
) -> Row:
    """The row of ``table`` whose id is ``key`` or starts with it (at least 6 characters).

    ``missing`` is raised, naming the ``noun`` and the command that lists the
    ids (``listing``), when nothing or more than one row matches.
    """
    absent = missing(f"no {noun} with id {key!r} in the metadata store; `{listing}` shows the ids")
    if "\0" in key:  # no id holds one, and PostgreSQL refuses it in a query (was a 500)
        raise absent
    column: Any = table.id  # type: ignore[attr-defined]
    query = sa.select(table).where(column == key)
    if lock:
        query = query.with_for_update()
    found = session.scalars(query).first()
    if found is not None:
        return found
    if len(key) >= MIN_PREFIX:
        matches = session.scalars(
            sa.select(table).where(column.startswith(key, autoescape=True)).limit(2)
        ).all()
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise missing(f"{noun} id prefix {key!r} matches several {noun}s; give more")
    raise absent


def view_of(row: Any, view: type[View], **given: Any) -> View:
    """The frozen ``view`` of an ORM ``row``: every field of the view read from the row.

    Times come back in UTC (SQLite forgets the zone), JSON mappings as fresh
    dicts, so a caller holds plain values that never touch the database
    again. ``given`` sets fields the row does not hold as they are (a run's
    step views).
    """
    values: dict[str, Any] = dict(given)
    for field in dataclasses.fields(view):  # type: ignore[arg-type]
        if field.name in values:
            continue
        value = getattr(row, field.name)
        if isinstance(value, datetime):
            value = utc(value)
        elif isinstance(value, dict) or (value is None and field.type == "dict[str, Any]"):
            value = dict(value or {})
        values[field.name] = value
    return view(**values)
