"""The jobs API and CLI with the embedded broker: no RabbitMQ, no database server.

uvicorn serves the app on a free port; a real ``loopml worker`` process
consumes from the SQLite broker in ``$LOOPML_HOME`` and registers a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app as cli
from loopml.core.settings import Settings, get_settings
from loopml.core.status import FINISHED, Status
from tests.api.conftest import KEY, api_client, running_api
from tests.queue.helpers import Worker, make_data, settings_env, wait_for, write_spec

pytestmark = pytest.mark.timeout(300)
runner = CliRunner()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("embedded")
    settings = Settings(  # every store under $LOOPML_HOME, no broker URL
        home=folder / "home", api_keys=[KEY], data_roots=[folder]
    )
    assert settings.broker.startswith("sqla+sqlite:///") and settings.broker_url is None
    return settings


@pytest.fixture(scope="module")
def data(embedded: Settings) -> Path:
    return make_data(embedded.home.parent, 1500)


@pytest.fixture(scope="module")
def api(embedded: Settings) -> Iterator[str]:
    with running_api(embedded) as url:
        yield url


@pytest.fixture(scope="module")
def worker(embedded: Settings, api: str) -> Iterator[Worker]:
    started = Worker(embedded, embedded.home.parent / "worker.log", "training")
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


@pytest.fixture
def cli_env(embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in settings_env(embedded).items():
        if key.startswith("LOOPML_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOOPML_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _finished(client: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    def poll() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        return body if body["status"] in FINISHED else None

    result: dict[str, Any] = wait_for(poll, timeout=timeout, interval=0.5, what=f"job {job_id}")
    return result


def test_a_bad_spec_is_refused_with_every_issue(api: str, embedded: Settings, data: Path) -> None:
    spec = json.loads(write_spec(embedded.home.parent, data, "refused").read_text())
    spec["pipeline"][0]["MLSteps"][1] = {"trian_model": {}}
    spec["experiment_config"]["target"] = "Klass"
    with api_client(api) as client:
        answer = client.post("/jobs", json={"spec": json.dumps(spec)})
        assert answer.status_code == 422
        issues = {issue["path"]: issue for issue in answer.json()["detail"]["issues"]}
        assert issues["pipeline[0].MLSteps[1].trian_model"]["suggestion"] == "train_model"
        # the API never reads the data, so a target missing from it is the worker's to find
        assert not any("Klass" in issue["text"] for issue in issues.values())
        assert client.post("/jobs", json={"spec": "{not: [valid"}).status_code == 422
        assert client.post("/jobs", json={}).status_code == 422
        assert client.get("/jobs").json() == {"jobs": []}  # nothing was queued
        assert client.get("/jobs/0123456789abcdef").status_code == 404


def test_a_job_cancelled_while_queued_never_runs(
    api: str, embedded: Settings, data: Path, cli_env: None
) -> None:
    spec = write_spec(embedded.home.parent, data, "cancelled")
    with api_client(api) as client:
        job = client.post("/jobs", json={"spec": spec.read_text(), "source": str(spec)}).json()
        assert job["status"] == "queued"
    result = runner.invoke(cli, ["jobs", "cancel", job["id"]])
    assert result.exit_code == 0, result.output
    assert "cancelled" in result.output


def test_submit_to_registered_model_through_the_api(
    api: str, embedded: Settings, data: Path, worker: Worker
) -> None:
    spec = write_spec(embedded.home.parent, data, "via_api")
    with api_client(api) as client:
        submitted = client.post("/jobs", json={"spec": spec.read_text(), "source": str(spec)})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        final = _finished(client, job_id)
        assert final["status"] == "succeeded", final["error"]
        assert final["run_id"] == job_id
        assert final["registered_model"] == {"name": "via_api", "version": "1"}
        assert final["progress"]["steps_done"] == final["progress"]["steps_total"] == 4
        assert final["duration_s"] > 0 and final["worker"].startswith(worker.hostname_prefix)
        listed = [job["id"] for job in client.get("/jobs").json()["jobs"]]
        assert job_id in listed
        cancelled = client.get("/jobs", params={"status": "cancelled"}).json()["jobs"]
        assert [j["model_name"] for j in cancelled] == ["cancelled"]
        assert cancelled[0]["run_id"] is None and cancelled[0]["attempts"] == 0
    from loopml.registry.tracking import use_tracking

    client_ = use_tracking(embedded).MlflowClient()
    assert str(client_.get_model_version_by_alias("via_api", "champion").version) == "1"


def test_submit_and_follow_a_job_from_the_cli(
    embedded: Settings, data: Path, worker: Worker, cli_env: None
) -> None:
    spec = write_spec(embedded.home.parent, data, "via_cli", register=False)
    submitted = runner.invoke(cli, ["submit", str(spec)])
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.split()[1]
    wait_for(
        lambda: "succeeded" in runner.invoke(cli, ["jobs", "show", job_id]).output,
        timeout=180,
        interval=0.5,
        what="the job to succeed",
    )
    shown = runner.invoke(cli, ["jobs", "show", job_id[:8]]).output
    assert "3/3" in shown and job_id in shown
    listed = runner.invoke(cli, ["jobs", "list"]).output
    assert job_id in listed and "training" in listed
    bad = runner.invoke(cli, ["submit", str(spec.parent / "missing.json")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    wrong = runner.invoke(cli, ["worker", "--queues", "training,scoring"])
    assert wrong.exit_code == 2
    assert "unknown queue kind 'scoring'; allowed: training, inference" in wrong.output


def test_the_worker_holds_jobs_from_http_to_the_data_roots(
    api: str, embedded: Settings, data: Path, worker: Worker
) -> None:
    """A job recorded as from HTTP is refused by the worker even if it got past the API."""
    from loopml.core.access import HTTP
    from loopml.core.spec import parse_spec
    from loopml.queue import make_app
    from loopml.queue.submit import submit_training

    escape = embedded.home.parent / "escape.csv"
    escape.symlink_to("/etc/passwd")
    spec = json.loads(write_spec(embedded.home.parent, data, "smuggled").read_text())
    ids = []
    for path in (str(escape), "/etc/passwd", f"{embedded.home.parent}/../../../etc/passwd"):
        spec["pipeline"][0]["MLSteps"][0] = {
            "load_data_from_file": {"path": path, "read_options": {"sep": "\u0001"}}
        }
        smuggled = parse_spec(json.dumps(spec))  # no API check: straight onto the queue
        ids.append(submit_training(make_app(embedded), embedded, smuggled, origin=HTTP).id)
    with api_client(api) as client:
        for job_id in ids:
            final = _finished(client, job_id)
            assert final["status"] == Status.REJECTED  # refused by the spec check, never ran
            assert "not under the data roots" in final["error"], final["error"]
            assert "root:" not in json.dumps(final) and final["run_id"] is None
