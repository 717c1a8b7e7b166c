"""The jobs API as an attacker meets it: keys, Host, data roots, named sources, SQL, body size.

Every test talks to a real uvicorn server on a free port. Nothing here needs
a worker: the point is what the API process itself does (and must not do)
with a spec.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from starlette.routing import Route
from typer.testing import CliRunner

from loopml.api import create_app
from loopml.api.guard import console_path
from loopml.cli.main import app as cli
from loopml.core.errors import ConfigError
from loopml.core.settings import Settings, get_settings
from tests.api.conftest import AUTH, KEY, api_client, running_api
from tests.conftest import fresh_postgres_database, require_service

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()
PASSWD = "/etc/passwd"
MB = 1024 * 1024


class Listener:
    """A TCP port that counts who connects to it (and answers nothing)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = int(self.socket.getsockname()[1])
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                peer, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            peer.close()


@pytest.fixture(scope="module")
def listener() -> Listener:
    return Listener()


@pytest.fixture(scope="module")
def warehouse() -> Iterator[str]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with fresh_postgres_database("warehouse") as url:
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE facts (a int, label int)")
            connection.exec_driver_sql("INSERT INTO facts VALUES (1, 0), (2, 1)")
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("roots") / "data"
    folder.mkdir()
    (folder / "ok.csv").write_text("a,label\n1,0\n2,1\n")
    (folder / "escape.csv").symlink_to(PASSWD)
    (folder / "etc").symlink_to("/etc")
    return folder


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, root: Path, listener: Listener, warehouse: str
) -> Settings:
    home = tmp_path_factory.mktemp("security") / "home"
    return Settings(
        home=home,
        api_keys=[KEY, "second-key"],
        api_allowed_hosts=["api.example.org"],
        api_max_body_bytes=2 * MB,
        data_roots=[root],
        data_sources={
            "silent": f"postgresql+psycopg://spy:pw@127.0.0.1:{listener.port}/x",
            "warehouse": warehouse,
        },
    )


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    with running_api(settings) as url:
        yield url


def spec(loader: dict[str, Any], *, target: str = "label", **extra: Any) -> str:
    document = {
        "pipeline": [{"MLSteps": [loader, {"train_model": {}}]}],
        "experiment_config": {
            "experiment_name": "sec",
            "model_name": "sec",
            "problem_type": "classification",
            "main_metric": "F1",
            "target": target,
        },
        **extra,
    }
    return json.dumps(document)


def file_spec(path: str, **params: Any) -> str:
    # the file-reading trick of the report: one line per request as "allowed columns"
    options = {"sep": "\u0001", "skiprows": 3}
    return spec({"load_data_from_file": {"path": path, "read_options": options, **params}})


def issues(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 422, answer.text
    found: list[dict[str, Any]] = answer.json()["detail"]["issues"]
    return found


CONSOLE_PUBLIC = {"/ui/login", "/ui/static/console.css"}


def test_every_route_but_health_needs_a_key(api: str, settings: Settings) -> None:
    app = create_app(settings, port=1)
    routes = [route for route in app.routes if isinstance(route, APIRoute | Route)]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/health", "/docs"} <= {
        route.path for route in routes
    }
    wrong = [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": KEY},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"Bearer {KEY[:-1]}"},
        {"Authorization": "Bearer"},
        {"Authorization": "bearer second-keyX"},
    ]
    checked = 0
    for route in routes:
        if console_path(route.path):  # its own login (tests/console): refused without a session
            if route.path in CONSOLE_PUBLIC:
                continue
            path = re.sub(r"\{[a-z_]+(:path)?\}", "x", route.path)
            for method in sorted(route.methods or {"GET"}):
                for headers in wrong:
                    answer = httpx.request(method, api + path, headers=headers, data={"a": "b"})
                    assert answer.status_code in (303, 403), (method, path, answer.text)
                    assert answer.status_code == 403 or answer.headers["location"].startswith(
                        "/ui/login"
                    )
            continue
        path = route.path.replace("{job_id}", "0123456789abcdef")
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue
            for headers in wrong:
                answer = httpx.request(method, api + path, headers=headers, json={"spec": "x"})
                if route.path == "/health":
                    assert answer.status_code == 200, (method, path)
                    continue
                assert answer.status_code == 401, (method, path, headers, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
                assert "Authorization: Bearer" in answer.json()["error"]
                checked += 1
            for key in (KEY, "second-key"):
                answer = httpx.request(
                    method, api + path, headers={"Authorization": f"Bearer {key}"}, json={}
                )
                assert answer.status_code != 401, (method, path)
    assert checked >= 6 * len(wrong)


def test_a_host_outside_the_allow_list_is_refused(api: str) -> None:
    port = api.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.2:{port}", "", "localhost.:1"):
        answer = httpx.get(f"{api}/jobs", headers={**AUTH, "Host": host})
        assert answer.status_code == 400, host
        assert answer.json()["error_code"] == "BAD_HOST"
        assert httpx.get(f"{api}/health", headers={"Host": host}).status_code == 400
    for host in (
        f"127.0.0.1:{port}",
        "127.0.0.1",
        f"localhost:{port}",
        f"LOCALHOST:{port}",
        f"[::1]:{port}",
        "api.example.org",
    ):
        answer = httpx.get(f"{api}/jobs", headers={**AUTH, "Host": host})
        assert answer.status_code == 200, host


def test_the_api_will_not_start_without_a_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPML_API_KEYS", raising=False)
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["api", "--port", "1"])
        assert result.exit_code == 2
        assert "LOOPML_API_KEYS" in result.output and "--no-auth" in result.output
        for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
            result = runner.invoke(cli, ["api", "--no-auth", "--host", host, "--port", "1"])
            assert result.exit_code == 2, host
            assert "loopback" in result.output
    finally:
        get_settings.cache_clear()
    with pytest.raises(ConfigError, match="LOOPML_API_KEYS"):
        create_app(Settings(home=tmp_path / "home"))


def test_no_auth_on_loopback_serves_without_a_key(tmp_path: Path) -> None:
    with running_api(Settings(home=tmp_path / "home"), no_auth=True) as url:
        assert httpx.get(f"{url}/jobs").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        PASSWD,
        "/proc/self/environ",
        "{root}/../../../../../../etc/passwd",
        "{root}/escape.csv",
        "{root}/etc/passwd",
        "file:///etc/passwd",
        "file:/etc/passwd",
        "FILE:///etc/passwd",
        "simplecache::file:///etc/passwd",
        "zip://passwd::file:///etc/passwd.zip",
        "s3://bucket/data.csv",
        "http://127.0.0.1:{port}/data.csv",
        "~/../../etc/passwd",
        "{root}/../data2/x.csv",
    ],
)
def test_a_file_outside_the_data_roots_is_refused_without_its_content(
    api: str, root: Path, listener: Listener, path: str
) -> None:
    path = path.format(root=root, port=listener.port)
    before = listener.connections
    with api_client(api) as client:
        answer = client.post("/jobs", json={"spec": file_spec(path, format="csv")})
        found = issues(answer)
        assert client.get("/jobs").json()["jobs"] == []  # nothing queued
    assert "root:" not in answer.text and "/bin/" not in answer.text
    assert "PATH=" not in answer.text
    assert [issue["path"] for issue in found] == ["pipeline[0].MLSteps[0].load_data_from_file"]
    assert "data roots" in found[0]["message"]
    assert listener.connections == before


def test_relative_paths_need_the_spec_folder(api: str, root: Path) -> None:
    with api_client(api) as client:
        found = issues(client.post("/jobs", json={"spec": file_spec("ok.csv")}))
        assert "needs the spec's folder" in found[0]["message"]
        # a source outside the roots does not let a relative path out of them
        escaped = client.post("/jobs", json={"spec": file_spec("passwd"), "source": "/etc/x.json"})
        assert "data roots" in issues(escaped)[0]["message"] and "root:" not in escaped.text
        relative_source = client.post(
            "/jobs", json={"spec": file_spec("ok.csv"), "source": "data/spec.json"}
        )
        assert "needs the spec's folder" in issues(relative_source)[0]["message"]
        inside = client.post(
            "/jobs", json={"spec": file_spec("ok.csv"), "source": str(root / "spec.json")}
        )
        assert inside.status_code == 202, inside.text
        assert client.post("/jobs/{}/cancel".format(inside.json()["id"])).status_code == 200


def test_steps_that_fetch_data_the_roots_cannot_hold_are_refused(api: str) -> None:
    kaggle = spec(
        {
            "load_data_from_kaggle": {
                "kaggle_dataset_name": "owner/data",
                "training_file_name": "../../../../etc/passwd",
            }
        }
    )
    with api_client(api) as client:
        found = issues(client.post("/jobs", json={"spec": kaggle}))
    assert "not allowed in specs submitted over HTTP" in found[0]["message"]


def test_fsspec_options_are_refused_over_http(api: str, root: Path) -> None:
    text = file_spec(str(root / "ok.csv"), storage_options={"anon": True})
    with api_client(api) as client:
        found = issues(client.post("/jobs", json={"spec": text}))
    assert "storage_options" in found[0]["message"]


def test_databases_are_reached_by_configured_name_only_and_never_from_the_api(
    api: str, listener: Listener, warehouse: str
) -> None:
    attack = "SELECT 1 AS a) AS x; CREATE TABLE pwned(a int); SELECT * FROM (SELECT 1 AS a"
    before = listener.connections
    with api_client(api) as client:
        by_url = spec({"load_data_from_sql": {"url": warehouse, "query": "facts"}})
        found = issues(client.post("/jobs", json={"spec": by_url}))
        assert "may not give a database URL" in found[0]["message"]
        assert "warehouse" in found[0]["message"]  # the names it may use instead
        unknown = spec({"load_data_from_sql": {"source": "nope", "query": "facts"}})
        assert (
            "unknown data source 'nope'"
            in issues(client.post("/jobs", json={"spec": unknown}))[0]["message"]
        )
        for loader in (
            {"url": warehouse, "query": attack},
            {"source": "warehouse", "query": attack},
            {"source": "warehouse", "query": "CREATE TABLE pwned(a int)"},
        ):
            answer = client.post("/jobs", json={"spec": spec({"load_data_from_sql": loader})})
            assert answer.status_code == 422, answer.text
        # a well-formed spec naming a source is queued without anyone connecting to it
        silent = spec({"load_data_from_sql": {"source": "silent", "query": "SELECT * FROM t"}})
        queued = client.post("/jobs", json={"spec": silent})
        assert queued.status_code == 202, queued.text
        shown = client.get(f"/jobs/{queued.json()['id']}").json()
        assert "silent" in shown["spec"]
    assert listener.connections == before
    engine = sa.create_engine(warehouse)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert tables == {"facts"}


def test_every_issue_is_reported_at_once(api: str) -> None:
    document = json.loads(file_spec(PASSWD))
    document["pipline"] = []
    document["pipeline"][0]["MLSteps"].append({"trian_model": {}})
    document["pipeline"][0]["MLSteps"][1] = {"train_model": {"fold": "three"}}
    document["experiment_config"]["main_metric"] = "F2"
    with api_client(api) as client:
        found = issues(client.post("/jobs", json={"spec": json.dumps(document)}))
    paths = {issue["path"] for issue in found}
    assert "pipline" in paths  # the frame
    assert "experiment_config.main_metric" in paths  # the experiment
    assert "pipeline[0].MLSteps[2].trian_model" in paths  # an unknown step
    assert any(path.startswith("pipeline[0].MLSteps[1].train_model") for path in paths)
    assert "pipeline[0].MLSteps[0].load_data_from_file" in paths  # the data policy


def test_json_with_comments_is_read_as_json(api: str, root: Path) -> None:
    text = "// a spec\n/* with comments */\n" + file_spec(str(root / "ok.csv"))[:-1] + ",}"
    with api_client(api) as client:
        answer = client.post("/jobs", json={"spec": text})
        assert answer.status_code == 202, answer.text
        client.post(f"/jobs/{answer.json()['id']}/cancel")


def test_secrets_in_stored_specs_are_masked(api: str, settings: Settings) -> None:
    from loopml.core.spec import parse_spec
    from loopml.queue import make_app
    from loopml.queue.submit import submit_training

    secret_spec = spec(
        {
            "load_data_from_sql": {
                "url": "postgresql+psycopg://bob:hunter2-pw@127.0.0.1:1/db",
                "query": "facts",
                "query_params": {"api_token": "tok-SECRET-1", "password": "pw-SECRET-2"},
            }
        }
    )
    job = submit_training(make_app(settings), settings, parse_spec(secret_spec))
    with api_client(api) as client:
        shown = client.get(f"/jobs/{job.id}")
        client.post(f"/jobs/{job.id}/cancel")
    assert shown.status_code == 200
    for secret in ("hunter2-pw", "tok-SECRET-1", "pw-SECRET-2"):
        assert secret not in shown.text
    assert "bob:***@127.0.0.1" in shown.json()["spec"]
    assert json.loads(shown.json()["spec"])["pipeline"][0]["MLSteps"][0]  # still JSON


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_a_body_over_the_limit_is_refused_before_it_is_read(api: str) -> None:
    big = 20 * MB
    body = b'{"spec": "' + b"x" * big + b'"}'
    with api_client(api, timeout=20) as client:
        declared = client.post("/jobs", content=body, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text
        assert "LOOPML_API_MAX_BODY_BYTES" in declared.json()["error"]
        chunked = client.post("/jobs", content=_chunks(big))
        assert chunked.status_code == 413
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in chunked.request.headers
        # a body just under the limit is read and judged on its merits
        small = client.post("/jobs", content=_chunks(MB))
        assert small.status_code == 422
        assert client.get("/health").status_code == 200  # the server is still there
    # an unauthenticated client is refused without its body being read
    anonymous = httpx.post(f"{api}/jobs", content=body, timeout=20)
    assert anonymous.status_code == 401
