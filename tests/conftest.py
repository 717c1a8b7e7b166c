"""Shared fixtures: real stores in temp folders, PostgreSQL when it is reachable.

Outside CI a test that needs PostgreSQL skips with the reason when the server
is down; with ``CI=true`` it fails instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Rich sizes tables to the terminal; tests read whole rows, so give them room.
os.environ.setdefault("COLUMNS", "200")

from loopml.core.settings import Settings, get_settings

FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_ADMIN_URL = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when a real service the test needs is down."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run this test against the real service")
    pytest.skip(message)


@contextmanager
def fresh_postgres_database(label: str) -> Iterator[str]:
    """A new PostgreSQL database named after ``label``, dropped afterwards."""
    import sqlalchemy as sa

    name = f"loopml_{label}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    with fresh_postgres_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store per test session: creating its schema takes seconds."""
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store URL: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    url: str = request.getfixturevalue("postgres_url")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        existing = sa.MetaData()
        existing.reflect(connection)
        for table in reversed(existing.sorted_tables):
            if table.name != "alembic_version":
                connection.execute(table.delete())
    engine.dispose()
    return url


@pytest.fixture
def settings(tmp_path: Path, tracking_uri: str, database_url: str) -> Settings:
    """Settings pointing at a temp home, the session's MLflow store and the test's database."""
    return Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=database_url,
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )


@pytest.fixture
def loopml_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The same settings as LOOPML_* variables, for code that reads them (the CLI)."""
    monkeypatch.setenv("LOOPML_HOME", str(settings.home))
    monkeypatch.setenv("LOOPML_TRACKING_URI", settings.tracking)
    monkeypatch.setenv("LOOPML_DATABASE_URL", settings.database)
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", settings.artifacts)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
