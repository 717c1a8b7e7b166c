"""Time as the stores keep it: UTC-aware, whatever the database hands back.

SQLite drops time zones on the way back; every time a store hands out is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def now() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


@overload
def utc(moment: datetime) -> datetime: ...


@overload
def utc(moment: None) -> None: ...


def utc(moment: datetime | None) -> datetime | None:
    """``moment`` as UTC-aware (naive values from SQLite are UTC); ``None`` stays ``None``."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
