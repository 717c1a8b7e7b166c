"""The review console in-process (FastAPI's TestClient), attacked by a hostile user.

Forged cookies a stranger can write, non-ASCII tokens, versions written in
ways MLflow would still accept, control characters in names, reasons and
path segments, ``next`` targets that resolve off the console, a copied cookie
after logout: each is refused with a 4xx (never a 5xx) and changes nothing,
counted in the alias log and the registry. Server errors come back as 500
responses (``raise_server_exceptions=False``) so a test sees what a browser
would.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopml.api import create_app
from loopml.api.ui import data
from loopml.api.ui import session as sessions
from loopml.core.settings import Settings
from loopml.lifecycle import history
from loopml.registry.models import APPROVAL_TAG, get_version, list_models
from tests.console.conftest import KEY, MODEL, World, csrf_of, login

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG = "zz<img src=x onerror=alert(2)>"  # sorts after the models other modules read
BASE = "http://127.0.0.1"


def _client(settings: Settings) -> TestClient:
    app = create_app(settings, bind_host="127.0.0.1")
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


@pytest.fixture
def anonymous(world: World) -> Iterator[TestClient]:
    with _client(world.settings) as client:
        yield client


@pytest.fixture
def user(world: World) -> Iterator[TestClient]:
    with _client(world.settings) as client:
        reply = login(client)  # type: ignore[arg-type]  # TestClient is an httpx.Client
        assert reply.status_code == 200, reply.text[:500]
        yield client


def _state(world: World) -> tuple[dict[str, str], int, dict[str, str | None]]:
    """All an action could change: the aliases, the alias log's length, each approval tag."""
    aliases = dict(list_models(world.settings)[MODEL])
    approvals = {
        role: get_version(world.settings, MODEL, version).tags.get(APPROVAL_TAG)
        for role, version in world.versions.items()
    }
    return aliases, len(history(world.settings, MODEL)), approvals


def _cookie(payload: bytes, signature: str = "0" * 64) -> bytes:
    return base64.urlsafe_b64encode(payload).rstrip(b"=") + b"." + signature.encode("latin-1")


def test_forged_session_cookies_are_refused_without_a_server_error(
    anonymous: TestClient,
) -> None:
    """A stranger writes the cookie: its payload must not be parsed before it is verified."""
    kid = sessions.fingerprint(KEY).encode()
    forged = [
        b"\xc3\xa9.x",  # non-ASCII where the signature goes
        _cookie(b'{"kid":"\xc3\xa9","iat":0,"nonce":"","who":""}'),  # non-ASCII key id
        _cookie(b'{"kid":"' + kid + b'","iat":1e400,"nonce":"","who":""}'),  # int(inf)
        _cookie(b"[" * 1400),  # nesting past the recursion limit
        _cookie(b'{"kid":"' + kid + b'","iat":0,"nonce":"","who":""}', "\xe9" * 64),
    ]
    for value in forged:
        reply = anonymous.get(
            "/ui/models",
            headers={"cookie": b"loopml_console=" + value},  # type: ignore[dict-item]
            follow_redirects=False,
        )
        assert reply.status_code == 303, (value, reply.status_code)
        assert reply.headers["location"].startswith("/ui/login")


def test_non_ascii_csrf_tokens_are_refused_without_a_server_error(
    world: World, anonymous: TestClient, user: TestClient
) -> None:
    form = anonymous.get("/ui/login")
    assert form.status_code == 200
    reply = anonymous.post("/ui/login", data={"csrf": "é", "key": KEY, "who": "mallory"})
    assert reply.status_code == 403
    assert sessions.SESSION_COOKIE not in anonymous.cookies
    before = _state(world)
    version = world.versions["http"]
    action = f"/ui/models/{MODEL}/versions/{version}/approve"
    for token in ("%C3%A9" * 64, "%F0%9F%98%80", "%ED%B3%BF", "%FF%FE"):
        reply = user.post(
            action,
            content=f"csrf={token}&reason=x".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert reply.status_code == 403, (token, reply.status_code)
    assert _state(world) == before


@pytest.mark.parametrize("verb", ["promote", "approve", "reject"])
def test_a_version_is_a_whole_number_or_nothing_is_found(
    world: World, user: TestClient, verb: str
) -> None:
    """``01`` and `` 1`` reach version 1 through MLflow's int() but are not "1" to loopml:
    promoting ``01`` over champion 1 made 1 its own ``previous`` and logged a version "01"."""
    token = csrf_of(user.get(f"/ui/models/{MODEL}").text)
    champion = list_models(world.settings)[MODEL]["champion"]
    before = _state(world)
    for version in (
        f"0{champion}",
        f"%20{champion}",
        f"{champion}%00",
        f"{champion}.0",
        "1e0",
        "abc",
        "-1",
        "0",
        "99999999999999999999999",
        "%2e%2e",
        "%C3%A9",
    ):
        path = f"/ui/models/{MODEL}/versions/{version}"
        reply = user.post(f"{path}/{verb}", data={"csrf": token, "reason": "hostile"})
        assert reply.status_code == 404, (version, reply.status_code, reply.text[-400:])
        assert world.settings.tracking_uri not in reply.text  # no store address in errors
        page = user.get(path)
        assert page.status_code == 404, (version, page.status_code)
        plot = user.get(f"{path}/plots/model/plots/roc_curve.png")
        assert plot.status_code == 404 and world.settings.tracking_uri not in plot.text
    assert _state(world) == before


def test_missing_models_and_runs_are_404_on_every_route(
    world: World, user: TestClient, postgres_url: str
) -> None:
    """Including on PostgreSQL, which cannot store a NUL: the lookup must never reach it."""
    token = csrf_of(user.get("/ui/models").text)
    before = _state(world)
    for name in ("no-such-model", "%00", "a%00b", "%1B%5B2J", "x" * 600):
        assert user.get(f"/ui/models/{name}").status_code == 404, name
        assert user.get(f"/ui/models/{name}/versions/1").status_code == 404, name
        promote = user.post(
            f"/ui/models/{name}/versions/1/promote", data={"csrf": token, "reason": "x"}
        )
        assert promote.status_code == 404, name
    assert _state(world) == before
    on_postgres = world.settings.model_copy(update={"database_url": postgres_url})
    with _client(on_postgres) as client:
        login(client)  # type: ignore[arg-type]
        token = csrf_of(client.get("/ui/models").text)
        for bad in ("%00", "run%00", "%E2%80%AE"):
            assert client.get(f"/ui/runs/{bad}").status_code == 404, bad
            assert client.get(f"/ui/monitoring/{bad}/report").status_code == 404, bad
            resume = client.post(f"/ui/runs/{bad}/resume", data={"csrf": token})
            assert resume.status_code == 404, bad
        assert client.get("/ui/runs/no-such-run").status_code == 404


def test_a_missing_or_unusable_reason_shows_the_form_again(world: World, user: TestClient) -> None:
    version = world.versions["http"]
    path = f"/ui/models/{MODEL}/versions/{version}"
    token = csrf_of(user.get(path).text)
    before = _state(world)
    for reason, kept in (
        ("", ""),
        ("   ", ""),
        ("ok\x1b[2J\x1b[Hlooks fine", None),  # a terminal escape, for `loopml models history`
        ("approved \u202egnirts", None),  # a bidi override reverses what is read
        ("line\x00nul", None),
        (f"{SCRIPT}{'y' * 1000}", None),
    ):
        reply = user.post(f"{path}/approve", data={"csrf": token, "reason": reason})
        assert reply.status_code == 422, (reason, reply.status_code)
        assert f'action="{path}/approve"' in reply.text  # the same form, to try again
        assert 'name="reason"' in reply.text and token in reply.text
        assert SCRIPT not in reply.text
        if kept is not None:
            assert f'value="{kept}"' in reply.text
    missing = user.post(f"{path}/reject", data={"csrf": token})
    assert missing.status_code == 422 and f'action="{path}/reject"' in missing.text
    rollback = user.post(f"/ui/models/{MODEL}/rollback", data={"csrf": token, "reason": ""})
    assert rollback.status_code == 422
    assert f'action="/ui/models/{MODEL}/rollback"' in rollback.text
    assert _state(world) == before


def test_a_name_with_control_characters_is_refused_at_login(anonymous: TestClient) -> None:
    for who in ("ann\x1b[31m", "ann\x00", "nna\u202e", "ann\x7f"):
        form = anonymous.get("/ui/login")
        reply = anonymous.post(
            "/ui/login",
            data={"csrf": csrf_of(form.text), "key": KEY, "who": who},
            follow_redirects=False,
        )
        assert reply.status_code == 422, repr(who)
        assert "control character" in reply.text
        assert sessions.SESSION_COOKIE not in anonymous.cookies
    # joiners are text (an emoji sequence, Persian script): such a name logs in
    form = anonymous.get("/ui/login")
    reply = anonymous.post(
        "/ui/login",
        data={"csrf": csrf_of(form.text), "key": KEY, "who": "Zoë \U0001f469\u200d\U0001f4bb"},
        follow_redirects=False,
    )
    assert reply.status_code == 303 and sessions.SESSION_COOKIE in anonymous.cookies


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "/ui/..//evil.example",
        "/ui/%2e%2e//evil.example",
        "/ui/..%2F..%2F%2Fevil.example",
        "/ui//evil.example",
        "/ui/\\evil.example",
        "/ui/%5Cevil.example",
        "/ui/\t/evil.example",
        "/ui/\r\nSet-Cookie: x=1",
        "%2F%2Fevil.example",
        "/ui/models/../../evil",
    ],
)
def test_the_next_target_after_login_stays_on_the_console(
    anonymous: TestClient, target: str
) -> None:
    form = anonymous.get("/ui/login", params={"next": target})
    assert f'value="{target}"' not in form.text or target.startswith("/ui/models")
    reply = anonymous.post(
        "/ui/login",
        data={"csrf": csrf_of(form.text), "key": KEY, "who": "ann", "next": target},
        follow_redirects=False,
    )
    assert reply.status_code == 303
    landed = urllib.parse.urlsplit(
        urllib.parse.urljoin(f"{BASE}/ui/login", reply.headers["location"])
    )
    assert landed.netloc == "127.0.0.1", reply.headers["location"]
    assert landed.path.startswith("/ui/") and "//" not in landed.path, reply.headers["location"]
    assert "set-cookie: x" not in str(reply.headers).lower()


def test_the_login_form_returns_to_the_page_that_sent_there(anonymous: TestClient) -> None:
    """The checks above must not cost a model whose name has a space or an accent its page."""
    for path in ("/ui/models/fraud%20model", "/ui/models/%C3%A9t%C3%A9?done=promote"):
        sent = anonymous.get(path, follow_redirects=False)
        assert sent.status_code == 303
        form = anonymous.get(sent.headers["location"])
        reply = anonymous.post(
            "/ui/login",
            data={"csrf": csrf_of(form.text), "key": KEY, "who": "ann", "next": path},
            follow_redirects=False,
        )
        assert reply.headers["location"] == path
        hidden = re.search(r'name="next" value="([^"]*)"', form.text)
        assert hidden is not None and hidden.group(1) == path.replace("&", "&amp;")
        anonymous.cookies.clear()


def test_logging_out_ends_every_copy_of_the_session(world: World, user: TestClient) -> None:
    copied = user.cookies[sessions.SESSION_COOKIE]
    version = world.versions["http"]
    token = csrf_of(user.get(f"/ui/models/{MODEL}/versions/{version}").text)
    assert user.post("/ui/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    before = _state(world)
    # the same server process, another browser holding a copy of the cookie
    with TestClient(user.app, base_url=BASE, raise_server_exceptions=False) as thief:
        thief.cookies.set(sessions.SESSION_COOKIE, copied, path="/ui")
        page = thief.get("/ui/models", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
        reply = thief.post(
            f"/ui/models/{MODEL}/versions/{version}/approve",
            data={"csrf": token, "reason": "after logout"},
        )
        assert reply.status_code == 403
    assert _state(world) == before


def test_a_registry_outage_is_503_and_never_shows_its_password(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MLflow server or a database that refuses connections: pages and actions answer 503
    (not 500, not 404), and the password in the store's URL is never shown."""
    from loopml.registry.tracking import use_tracking
    from tests.console.conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    password = "s3cret-registry-pw"
    down = world.settings.model_copy(
        update={"tracking_uri": f"http://ann:{password}@127.0.0.1:{free_port()}/"}
    )
    try:
        with _client(down) as client:
            login(client)  # type: ignore[arg-type]
            token = csrf_of(client.get("/ui/runs").text)
            replies = [
                client.get("/ui/models"),
                client.get(f"/ui/models/{MODEL}"),
                client.get(f"/ui/models/{MODEL}/versions/1"),
                client.get(f"/ui/models/{MODEL}/versions/1/plots/model/plots/roc_curve.png"),
                client.post(
                    f"/ui/models/{MODEL}/versions/1/promote", data={"csrf": token, "reason": "x"}
                ),
            ]
            for reply in replies:
                assert reply.status_code == 503, (reply.url, reply.status_code)
                assert password not in reply.text, reply.url
                assert reply.headers["x-frame-options"] == "DENY"
    finally:
        use_tracking(world.settings)  # MLflow's tracking URI is process-wide
    # the metadata store refusing connections: 503 (it was a 404, "not found")
    database = f"postgresql+psycopg://loopml:{password}@127.0.0.1:{free_port()}/meta"
    with _client(world.settings.model_copy(update={"database_url": database})) as client:
        login(client)  # type: ignore[arg-type]
        for path in ("/ui/runs", "/ui/runs/abcdef012345", "/ui/jobs", "/ui/monitoring"):
            reply = client.get(path)
            assert reply.status_code == 503, (path, reply.status_code)
            assert password not in reply.text, path


def test_pages_and_actions_run_off_the_event_loop(
    world: World, user: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow and the database are called synchronously: on the event loop, one slow call
    would stall every other request of the server (the jobs API's included)."""
    seen: list[tuple[str, bool]] = []
    real = data.models_overview

    def watched(settings: Settings) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        seen.append((threading.current_thread().name, on_loop))
        return real(settings)

    monkeypatch.setattr(data, "models_overview", watched)
    assert user.get("/ui/models").status_code == 200
    assert seen and not any(on_loop for _, on_loop in seen), seen


def test_what_already_held(world: World, user: TestClient, anonymous: TestClient) -> None:
    """Checked and found sound before this file; kept so it stays so."""
    version = world.versions["http"]
    path = f"/ui/models/{MODEL}/versions/{version}"
    token = csrf_of(user.get(path).text)
    before = _state(world)
    # GET with an action's parameters does nothing; nor do other methods
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        reply = user.request(method, f"{path}/approve", params={"csrf": token, "reason": "x"})
        assert reply.status_code == 405, method
    # wrong, empty, huge, non-ASCII and control-character keys: the same 401, no cookie
    for key in ("", "é", "x" * 15_000, KEY + "\x00", KEY + "\n", KEY[:-1], KEY.upper()):
        form = anonymous.get("/ui/login")
        reply = anonymous.post(
            "/ui/login", data={"csrf": csrf_of(form.text), "key": key, "who": "x"}
        )
        assert reply.status_code in (401, 413), repr(key[:20])
        assert sessions.SESSION_COOKIE not in anonymous.cookies
        if reply.status_code == 401:
            assert "unknown API key" in reply.text
    # XSS: tags, the gate's reason and lineage tags render as text
    from loopml.registry.models import set_version_tag

    set_version_tag(world.settings, MODEL, version, "loopml.gate.reason", SCRIPT)
    set_version_tag(world.settings, MODEL, version, "loopml.hostile", SCRIPT)
    page = user.get(path)
    assert SCRIPT not in page.text and ESCAPED in page.text
    # security headers on pages, the login form and error pages
    for reply in (page, anonymous.get("/ui/login"), user.get("/ui/runs/no-such-run")):
        headers = reply.headers
        assert "script-src" not in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
    # malformed form bodies: 4xx
    action = f"{path}/approve"
    for body, kind in (
        (b"csrf=" + token.encode() + b"&reason=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"&".join([b"a=1"] * 30), "application/x-www-form-urlencoded"),
        (b"--x\r\n", "multipart/form-data; boundary=x"),
        (b"{}", "application/json"),
    ):
        reply = user.post(action, content=body, headers={"content-type": kind})
        assert 400 <= reply.status_code < 500, (body[:20], reply.status_code)
    assert _state(world) == before
    # a session of a key taken out of LOOPML_API_KEYS opens nothing
    other = "console-key-second-0123456789"
    both = world.settings.model_copy(update={"api_keys": [KEY, other]})
    with _client(both) as client:
        login(client, key=other)  # type: ignore[arg-type]
        cookie = client.cookies[sessions.SESSION_COOKIE]
    with _client(world.settings) as client:
        client.cookies.set(sessions.SESSION_COOKIE, cookie, path="/ui")
        assert client.get("/ui/models", follow_redirects=False).status_code == 303
    # over HTTPS (or behind a proxy saying so) the cookie is Secure
    app = create_app(world.settings, bind_host="127.0.0.1")
    with TestClient(app, base_url="https://127.0.0.1") as client:
        form = client.get("/ui/login")
        reply = client.post(
            "/ui/login",
            data={"csrf": csrf_of(form.text), "key": KEY, "who": "ann"},
            follow_redirects=False,
        )
        cookie_header = next(
            v
            for k, v in reply.headers.multi_items()
            if k == "set-cookie" and v.startswith(sessions.SESSION_COOKIE)
        )
        for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/ui", "Max-Age=43200"):
            assert flag in cookie_header, flag


def test_markup_stored_anywhere_renders_as_text(world: World, user: TestClient) -> None:
    """Held already: a run, its steps, a job and monitoring windows with markup in every
    text field a pipeline or a worker writes; and no template can turn escaping off."""
    from datetime import UTC, datetime

    from loopml.api.ui.pages import _environment
    from loopml.store.jobs import JobStore
    from loopml.store.monitoring import CheckView, MonitorStore
    from loopml.store.runs import Provenance, RunStore

    runs = RunStore(world.settings.database)
    try:
        provenance = Provenance(SCRIPT, SCRIPT, SCRIPT, SCRIPT, SCRIPT)
        run_id = runs.create_run(
            spec_text=SCRIPT,
            spec_hash=SCRIPT,
            spec_source=SCRIPT,
            experiment_name=SCRIPT,
            model_name=SCRIPT,
            provenance=provenance,
        )
        step = runs.start_step(run_id, 0, SCRIPT, {"x": SCRIPT}, SCRIPT)
        runs.finish_step(step, "failed", error=SCRIPT)
        runs.finish_run(run_id, "failed", error=SCRIPT, traceback=SCRIPT)
    finally:
        runs.close()
    jobs = JobStore(world.settings.database)
    try:
        jobs.create(f"{run_id}", kind="training", queue="training", model_name=SCRIPT)
        jobs.finish(run_id, "failed", error=SCRIPT)
    finally:
        jobs.close()
    moment = datetime(2026, 11, 2, tzinfo=UTC)
    store = MonitorStore.open(world.settings.database)
    try:
        store.add_checks(
            [
                CheckView(
                    kind="decision",
                    status="alert",
                    figures={"findings": [SCRIPT], "action": "alert"},
                    monitor_run_id=SCRIPT,
                    model_name=IMG,  # a "/" (as in </script>) is no path segment
                    model_version=SCRIPT,
                    window_index=0,
                    window_start=moment,
                    window_end=moment,
                    rows=1,
                    complete=True,
                    created_at=moment,
                )
            ]
        )
    finally:
        store.engine.dispose()
    quoted = urllib.parse.quote(IMG, safe="")
    for path in (
        "/ui/runs",
        f"/ui/runs/{run_id}",
        "/ui/jobs",
        "/ui/monitoring",
        f"/ui/monitoring/{quoted}/report",
    ):
        reply = user.get(path)
        assert reply.status_code == 200, path
        assert SCRIPT not in reply.text and IMG not in reply.text, path
        assert "&lt;script&gt;" in reply.text or "&lt;img" in reply.text, path
        assert "script-src" not in reply.headers["content-security-policy"], path
    env = _environment()
    assert env.loader is not None and callable(env.autoescape)
    for name in env.list_templates():
        assert env.autoescape(name), name
        text = env.loader.get_source(env, name)[0]
        for unsafe in ("|safe", "| safe", "autoescape false", "Markup"):
            assert unsafe not in text, (name, unsafe)
