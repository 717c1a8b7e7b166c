"""``loopml features materialize|status`` and the monitor's stale-store alert."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.core.settings import Settings, get_settings
from tests.feature_store.conftest import make_repo

pytestmark = pytest.mark.feast


def test_materialize_then_status_and_the_stale_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from loopml.cli.main import app
    from loopml.monitoring.alerts import Alerter
    from loopml.monitoring.features import STALE, check_features

    repo = make_repo(tmp_path / "fs")
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    runner = CliRunner()

    never = runner.invoke(app, ["features", "status", "--repo", str(repo.repo), "-o", "json"])
    assert never.exit_code == 1, never.output  # never materialized: stale
    found = json.loads(never.stdout)
    assert found["last_run"] is None
    assert [(v["view"], v["stale"]) for v in found["views"]] == [("customer_stats", True)]

    done = runner.invoke(app, ["features", "materialize", "--repo", str(repo.repo), "-o", "json"])
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)  # Feast's own progress went to stderr, not into the JSON
    assert found["last_run"]["status"] == "ok"
    assert found["views"][0]["stale"] is False
    status = runner.invoke(app, ["features", "status", "--repo", str(repo.repo)])
    assert status.exit_code == 0 and "last materialization: ok" in status.stdout

    strict = Settings(home=tmp_path / "home", feature_stale_after_s=0.0)
    with caplog.at_level(logging.WARNING, logger="loopml.monitoring.alerts"):
        report = check_features(strict, "m", str(repo.repo), Alerter(), materialize=False)
    assert report is not None and report["problems"]
    assert "customer_stats is stale" in report["problems"][0]
    assert any("customer_stats is stale" in r.getMessage() for r in caplog.records)
    fresh = check_features(
        Settings(home=tmp_path / "home"), "m", str(repo.repo), Alerter(), materialize=True
    )
    assert fresh is not None and fresh["problems"] == []
    assert STALE == "stale_features"
    get_settings.cache_clear()


def test_no_repo_is_bad_input_naming_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Feast installed, a folder without feature_store.yaml is a typo: exit 2, one line."""
    from loopml.cli.main import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPML_FEATURE_REPO", raising=False)
    get_settings.cache_clear()
    for command in ("status", "materialize", "apply"):
        result = CliRunner().invoke(app, ["features", command])
        assert result.exit_code == 2, result.output
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert "feature_store.yaml does not exist" in result.stderr
        assert "--repo or LOOPML_FEATURE_REPO" in result.stderr
    assert not list(tmp_path.rglob("*.json"))  # no materialization record written
    get_settings.cache_clear()
