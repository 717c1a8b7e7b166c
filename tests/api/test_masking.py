"""Secrets in stored specs are masked wherever a spec or an error is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml.core.access import DataPolicy, is_url, mask_secrets
from loopml.core.errors import AccessError


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"url": "postgresql+psycopg://bob:hunter2@db:5432/x"}', "hunter2"),
        ("url: mysql+pymysql://u:p%40ss@h/db?charset=utf8", "p%40ss"),
        ('{"storage_options": {"key": "AKIAEXAMPLE", "secret": "s e c r e t"}}', "AKIAEXAMPLE"),
        ('{"storage_options": {"key": "AKIAEXAMPLE", "secret": "s e c r e t"}}', "s e c r e t"),
        ("storage_options:\n  key: AKIAEXAMPLE\n  token: 'tok'\n", "AKIAEXAMPLE"),
        ("{password: 'pw', api_token: tok123}", "tok123"),
        ('{"DB_PASSWORD": "x1y2"}', "x1y2"),
        ('{"query_params": {"client_secret": "zzz"}}', "zzz"),
        ("redis://:onlypass@cache:6379/0", "onlypass"),
        # SQLAlchemy reads the password up to the last "@": "/" and "@" are part of it
        ("url: postgresql://bob:hun/ter2@db/x", "hun/ter2"),
        ('{"url": "postgresql://bob:hunter@2@db/x"}', "2@db"),
        ("url: postgresql://bob:a/b:c@db/x", "a/b:c"),
        # an unquoted YAML value runs to the end of its line
        ("query_params:\n  password: correct horse battery\n", "horse battery"),
        ("{password: two words, x: 1}", "words"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    masked = mask_secrets(text)
    assert masked is not None and secret not in masked and "***" in masked


def test_masking_keeps_json_json_and_leaves_the_rest() -> None:
    document = {
        "url": "postgresql://bob:pw@db/x",
        "target": "Class",
        "query": "SELECT * FROM t",
        "keys": ["a", "b"],
        "storage_options": {"key": "k", "anon": False},
    }
    masked = json.loads(mask_secrets(json.dumps(document)) or "")
    assert masked["url"] == "postgresql://bob:***@db/x"
    assert masked["storage_options"] == {"key": "***", "anon": False}
    assert masked["target"] == "Class" and masked["query"] == "SELECT * FROM t"
    assert masked["keys"] == ["a", "b"]
    assert mask_secrets(None) is None


@pytest.mark.parametrize(
    "path",
    ["file:///etc/passwd", "file:/etc/passwd", "s3://b/k", "zip://a::/x.zip", "simplecache::/x"],
)
def test_urls_and_chains_are_urls(path: str) -> None:
    assert is_url(path)
    with pytest.raises(AccessError, match="URL"):
        DataPolicy(restricted=True).local_file(path, None)


def test_plain_paths_are_not_urls() -> None:
    assert not is_url("/data/x.csv") and not is_url("data/x.csv") and not is_url("C:\\x.csv")


def test_the_cli_masks_secrets_in_jobs_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from loopml.cli.main import app as cli
    from loopml.core.settings import Settings, get_settings
    from loopml.core.status import Status
    from loopml.engine.provenance import provenance
    from loopml.store.jobs import TRAINING, JobStore
    from loopml.store.runs import RunStore

    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    text = '{"url": "postgresql://bob:hunter2-pw@db/x", "password": "pw-SECRET"}'
    jobs = JobStore(settings.database)
    jobs.create("a" * 32, kind=TRAINING, queue="training", spec_text=text)
    jobs.finish("a" * 32, Status.FAILED, error="cannot reach postgresql://bob:hunter2-pw@db/x")
    jobs.close()
    runs = RunStore(settings.database)
    run_id = runs.create_run(
        spec_text=text,
        spec_hash="0" * 64,
        spec_source=None,
        experiment_name="e",
        model_name="m",
        provenance=provenance("local", tmp_path),
    )
    runs.close()
    monkeypatch.setenv("LOOPML_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(cli, ["jobs", "show", "a" * 32])
        as_json = CliRunner().invoke(cli, ["jobs", "show", "a" * 32, "-o", "json"])
        spec = CliRunner().invoke(cli, ["runs", "show", run_id, "--spec"])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0 and spec.exit_code == 0, shown.output + spec.output
    assert "bob:***@db" in shown.output and "bob:***@db" in spec.output
    assert as_json.exit_code == 0, as_json.output
    assert "bob:***@db" in json.loads(as_json.stdout)["error"]
    for output in (shown.output, spec.output, as_json.output):
        assert "hunter2-pw" not in output and "pw-SECRET" not in output


def test_a_malformed_setting_is_reported_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from loopml.cli.main import app as cli
    from loopml.core.settings import get_settings

    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOOPML_DATA_SOURCES", "dw=postgresql://u:SECRET-PW@h/db,broken")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["jobs", "list"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "LOOPML_DATA_SOURCES entries are name=url" in result.output
    assert "SECRET-PW" not in result.output
