"""Connecting to the metadata store and bringing its schema to the current migration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from loopml.core.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"


def connect(
    url: str,
    *,
    migrate: bool = True,
    json_serializer: Callable[[Any], str] | None = None,
    **engine_options: Any,
) -> Engine:
    """An engine for ``url`` whose schema is at the newest migration.

    SQLite files get their folder created; PostgreSQL URLs without a driver
    use psycopg 3, the one we install. ``json_serializer`` replaces ``json.dumps``
    for JSON columns (the prediction log passes a faster one); ``engine_options``
    go to ``create_engine`` (the prediction log's writers use no pool).
    """
    options: dict[str, Any] = dict(engine_options)
    if json_serializer is not None:
        options["json_serializer"] = json_serializer
    url = _with_driver(url)
    try:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 30}, **options)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            options.setdefault("pool_pre_ping", "poolclass" not in options)
            engine = sa.create_engine(url, **options)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreError(f"LOOPML_DATABASE_URL={_safe(url)} cannot be used: {exc}") from exc
    if migrate:
        upgrade(engine)
    return engine


def upgrade(engine: Engine) -> None:
    """Apply pending Alembic migrations; a no-op when the schema is current."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.begin() as connection:
            if MigrationContext.configure(connection).get_current_revision() == head:
                return
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise StoreError(
            f"cannot reach the metadata store at {_safe(str(engine.url))}: "
            f"{str(exc.orig).strip() or exc}. Check LOOPML_DATABASE_URL and that the "
            "database server is up"
        ) from exc


def _with_driver(url: str) -> str:
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def _safe(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
