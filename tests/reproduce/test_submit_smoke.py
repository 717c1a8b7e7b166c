"""``submit --smoke`` records the profile on the job, where the worker reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.api.app import JobRequest
from loopml.cli.main import app
from loopml.core.settings import Settings, get_settings
from loopml.store.jobs import JobStore
from tests.reproduce.conftest import seed_spec, write_data


@pytest.mark.parametrize("smoke", [True, False])
def test_submit_records_the_smoke_profile_on_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smoke: bool
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))  # embedded broker, no worker
    get_settings.cache_clear()
    try:
        write_data(tmp_path / "data.csv", rows=40)
        spec = seed_spec(tmp_path)
        done = CliRunner().invoke(app, ["submit", *(["--smoke"] if smoke else []), str(spec)])
        assert done.exit_code == 0, done.output
        jobs = JobStore(Settings(home=tmp_path / "home").database)
        try:
            (job,) = jobs.list(limit=5)
        finally:
            jobs.close()
        assert job.details.get("smoke") is (True if smoke else None)
    finally:
        get_settings.cache_clear()


def test_the_jobs_api_takes_a_smoke_field() -> None:
    assert JobRequest(spec="{}", smoke=True).smoke is True
    assert JobRequest(spec="{}").smoke is False
