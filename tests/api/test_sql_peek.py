"""`loopml validate` peeks at SQL on its own machine: one SELECT, in a read-only transaction.

Real PostgreSQL and SQLite; each test counts what is in the database afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from loopml.cli.main import app as cli
from loopml.core.access import DataPolicy
from loopml.core.errors import AccessError
from loopml.core.settings import get_settings
from loopml.steps.data import read_only
from tests.conftest import fresh_postgres_database, require_service

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
ATTACK = "SELECT 1 AS a) AS x; CREATE TABLE pwned(a int); SELECT * FROM (SELECT 1 AS a"
# the peek's transaction is rolled back; an attacker commits inside it
COMMITTED = (
    "SELECT 1 AS a) AS x; COMMIT; CREATE TABLE pwned(a int); COMMIT; SELECT * FROM (SELECT 1 AS a"
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with fresh_postgres_database("peek") as url:
        _fill(url)
        yield url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _fill(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE facts (a int, label int)")
        connection.exec_driver_sql("INSERT INTO facts VALUES (1, 0), (2, 1), (3, 0)")
    engine.dispose()


def _state(url: str) -> tuple[set[str], int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            rows = connection.execute(sa.text("SELECT count(*) FROM facts")).scalar_one()
    finally:
        engine.dispose()
    return tables, int(rows)


def _validate(folder: Path, loader: dict[str, Any], target: str = "label") -> Any:
    spec = {
        "pipeline": [{"MLSteps": [loader, {"train_model": {}}]}],
        "experiment_config": {
            "experiment_name": "peek",
            "model_name": "peek",
            "problem_type": "classification",
            "main_metric": "F1",
            "target": target,
        },
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return runner.invoke(cli, ["validate", str(path)])


@pytest.mark.parametrize(
    "query",
    [
        ATTACK,
        COMMITTED,
        "SELECT 1; CREATE TABLE pwned(a int)",
        "CREATE TABLE pwned(a int)",
        "SELECT * FROM facts WHERE a = (1",
        "SELECT 1 AS a) AS x UNION SELECT (1",
        "DROP TABLE facts",
    ],
)
def test_the_peek_refuses_anything_but_one_select(postgres: str, home: Path, query: str) -> None:
    result = _validate(home, {"load_data_from_sql": {"url": postgres, "query": query}})
    assert _state(postgres) == ({"facts"}, 3)  # nothing created, nothing dropped
    assert result.exit_code == 2, result.output
    assert "query" in result.output


def test_the_peek_cannot_write_even_in_one_select(postgres: str, home: Path) -> None:
    writer = "WITH gone AS (DELETE FROM facts RETURNING *) SELECT * FROM gone"
    result = _validate(home, {"load_data_from_sql": {"url": postgres, "query": writer}})
    assert result.exit_code == 0, result.output  # the peek failed (read-only): no verdict on it
    assert _state(postgres) == ({"facts"}, 3)
    found = _validate(home, {"load_data_from_sql": {"url": postgres, "query": "facts"}}, "lable")
    assert found.exit_code == 2 and "'lable' is not in the data" in found.output


def test_a_read_only_connection_refuses_writes(postgres: str, tmp_path: Path) -> None:
    lite = f"sqlite:///{tmp_path / 'lite.db'}"
    _fill(lite)
    for url in (postgres, lite):
        engine = sa.create_engine(url)
        try:
            with read_only(engine) as connection, pytest.raises(sa.exc.SQLAlchemyError):
                connection.exec_driver_sql("DELETE FROM facts")
            with read_only(engine) as connection:
                assert connection.exec_driver_sql("SELECT count(*) FROM facts").scalar_one() == 3
        finally:
            engine.dispose()
        assert _state(url) == ({"facts"}, 3)


def test_a_missing_data_file_is_an_issue_with_its_path(home: Path) -> None:
    result = _validate(home, {"load_data_from_file": {"path": "nowhere/train.csv"}})
    assert result.exit_code == 2
    assert f"no such file '{home / 'nowhere' / 'train.csv'}'" in " ".join(result.output.split())


def test_a_named_source_resolves_from_settings_only(postgres: str) -> None:
    policy = DataPolicy(sources={"warehouse": postgres})
    assert policy.sql_url(None, "warehouse") == postgres
    with pytest.raises(AccessError, match="unknown data source 'other'"):
        policy.sql_url(None, "other")
    restricted = DataPolicy(restricted=True, sources={"warehouse": postgres})
    with pytest.raises(AccessError, match="may not give a database URL"):
        restricted.sql_url(postgres, None)
