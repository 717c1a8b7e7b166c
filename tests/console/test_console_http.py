"""The review console over real HTTP (uvicorn on a free port), attacked the way people would.

No session, a wrong key, a forged cookie, a missing or wrong CSRF token, a
cross-site POST, path traversal on plot and report links, an oversized
reason, markup in names and reasons: each is refused (or escaped) and changes
nothing, counted in the registry and the alias log rather than trusted from
a status code alone.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from loopml.api.ui import session as sessions
from loopml.lifecycle import history
from loopml.registry.models import APPROVAL_TAG, CHALLENGER, get_version, version_for_alias
from tests.api.conftest import running_api
from tests.console.conftest import KEY, MODEL, World, csrf_of, login

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def url(world: World) -> Iterator[str]:
    with running_api(world.settings) as base:
        yield base


@pytest.fixture
def anonymous(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture
def user(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as client:
        reply = login(client)
        assert reply.status_code == 200, reply.text
        yield client


def _version_path(version: str, name: str = MODEL) -> str:
    return f"/ui/models/{urllib.parse.quote(name, safe='')}/versions/{version}"


def _state(world: World, version: str) -> tuple[str | None, int]:
    """What an action could change: the approval tag and how many moves the alias log holds."""
    tag = get_version(world.settings, MODEL, version).tags.get(APPROVAL_TAG)
    return tag, len(history(world.settings, MODEL))


def test_every_page_redirects_to_login_without_a_session(
    world: World, anonymous: httpx.Client
) -> None:
    version = world.versions["approve"]
    for path in (
        "/ui",
        "/ui/models",
        f"/ui/models/{MODEL}",
        _version_path(version),
        "/ui/runs",
        f"/ui/runs/{world.run_ids['approve']}",
        "/ui/jobs",
        "/ui/monitoring",
        f"/ui/monitoring/{MODEL}/report",
    ):
        reply = anonymous.get(path)
        assert reply.status_code == 303, path
        assert reply.headers["location"].startswith("/ui/login?next="), path
        assert MODEL not in reply.text
    plot = anonymous.get(f"{_version_path(version)}/plots/model/plots/roc_curve.png")
    assert plot.status_code == 403 and not plot.content.startswith(b"\x89PNG")


def test_the_jobs_api_still_needs_its_bearer_key(anonymous: httpx.Client) -> None:
    assert anonymous.get("/jobs").status_code == 401
    assert anonymous.get("/uix").status_code == 401  # the console's prefix is not a wildcard
    assert anonymous.get("/jobs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_a_wrong_key_or_a_forged_cookie_opens_nothing(world: World, url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        reply = login(client, key="not-the-key")
        assert reply.status_code == 401
        assert "unknown API key" in reply.text
        assert sessions.SESSION_COOKIE not in client.cookies
        assert client.get("/ui/models").status_code == 303
        # a cookie signed with another key, and one whose body was edited after signing
        forged = sessions.issue("some-other-key-entirely", "mallory")
        client.cookies.set(sessions.SESSION_COOKIE, forged, path="/ui")
        assert client.get("/ui/models").status_code == 303
        genuine = sessions.issue(KEY, "ann")
        body, signature = genuine.split(".")
        client.cookies.set(sessions.SESSION_COOKIE, f"{body[:-2]}AA.{signature}", path="/ui")
        assert client.get("/ui/models").status_code == 303
        expired = sessions.issue(KEY, "ann", now=0)
        client.cookies.set(sessions.SESSION_COOKIE, expired, path="/ui")
        assert client.get("/ui/models").status_code == 303


def test_login_sets_a_strict_httponly_cookie_and_never_puts_the_key_in_a_url(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        form = client.get("/ui/login?next=https%3A%2F%2Fevil.example%2F")
        token = csrf_of(form.text)
        reply = client.post(
            "/ui/login",
            data={"csrf": token, "key": KEY, "who": "ann", "next": "https://evil.example/"},
        )
        assert reply.status_code == 303
        assert reply.headers["location"] == "/ui/models"  # no open redirect
        cookie = next(
            value
            for name, value in reply.headers.multi_items()
            if name == "set-cookie" and value.startswith(sessions.SESSION_COOKIE)
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert KEY not in cookie and KEY not in reply.headers["location"]
        # the login form itself needs its double-submit token
        client.cookies.clear()
        refused = client.post("/ui/login", data={"key": KEY, "who": "ann"})
        assert refused.status_code == 403
        assert sessions.SESSION_COOKIE not in client.cookies


def test_posts_without_or_with_a_wrong_csrf_token_change_nothing(
    world: World, user: httpx.Client, url: str
) -> None:
    version = world.versions["http"]
    before = _state(world, version)
    action = f"{_version_path(version)}/approve"
    assert user.post(action, data={"reason": "no token"}).status_code == 403
    assert user.post(action, data={"reason": "wrong", "csrf": "0" * 64}).status_code == 403
    # a token from another session does not fit this one
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as other:
        login(other, who="bob")
        theirs = csrf_of(other.get(_version_path(version)).text)
    assert user.post(action, data={"reason": "theirs", "csrf": theirs}).status_code == 403
    # nor does a POST with no session at all, with a real token
    with httpx.Client(base_url=url, timeout=60) as stranger:
        assert stranger.post(action, data={"reason": "x", "csrf": theirs}).status_code == 403
    assert _state(world, version) == before == ("pending", before[1])


def test_a_cross_site_post_is_refused_even_with_a_valid_token(
    world: World, user: httpx.Client
) -> None:
    version = world.versions["http"]
    before = _state(world, version)
    token = csrf_of(user.get(_version_path(version)).text)
    action = f"{_version_path(version)}/approve"
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {"Origin": f"http://{user.base_url.host}.evil.example:{user.base_url.port}"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        reply = user.post(action, data={"reason": "x", "csrf": token}, headers=headers)
        assert reply.status_code == 403, headers
    assert _state(world, version) == before


def test_reasons_are_required_and_bounded(world: World, user: httpx.Client) -> None:
    version = world.versions["http"]
    before = _state(world, version)
    token = csrf_of(user.get(_version_path(version)).text)
    action = f"{_version_path(version)}/approve"
    assert user.post(action, data={"reason": "  ", "csrf": token}).status_code == 422
    long = user.post(action, data={"reason": "x" * 1001, "csrf": token})
    assert long.status_code == 422 and "at most 1000" in long.text
    huge = user.post(action, data={"reason": "x" * 20_000, "csrf": token})
    assert huge.status_code == 413
    json_body = user.post(action, json={"reason": "x", "csrf": token})
    assert json_body.status_code == 415
    assert _state(world, version) == before


def test_path_traversal_on_plot_and_report_links_reaches_nothing(
    world: World, user: httpx.Client
) -> None:
    base = _version_path(world.versions["approve"])
    page = user.get(base).text
    assert f"{base}/plots/model/plots/roc_curve.png" in page
    image = user.get(f"{base}/plots/model/plots/roc_curve.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    for attack in (
        "model/../../../../../../etc/passwd",
        "model/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "model/plots/..%2f..%2f..%2fMLmodel",
        "model//etc/passwd",
        "run/../../meta/loopml.db",
        "model/MLmodel",  # a real artifact, but not a plot the report lists
    ):
        raw = httpx.URL(str(user.base_url)).copy_with(raw_path=f"{base}/plots/{attack}".encode())
        reply = user.get(raw)
        assert reply.status_code in (403, 404), attack
        assert b"root:" not in reply.content and b"SQLite" not in reply.content, attack
    for name in ("..%2f..%2fetc%2fpasswd", "%2e%2e", HOSTILE_NAME):
        reply = user.get(f"/ui/monitoring/{name}/report")
        assert reply.status_code == 404


def test_markup_in_names_and_reasons_is_escaped_and_the_reason_is_audited(
    world: World, user: httpx.Client
) -> None:
    from loopml.lifecycle import register

    source = get_version(world.settings, MODEL, world.versions["champion"]).source
    register(world.settings, source, HOSTILE_NAME, {}, actor="tests")
    models = user.get("/ui/models").text
    assert HOSTILE_NAME not in models
    assert "&lt;img src=x onerror=alert(1)&gt;" in models
    assert user.get(f"/ui/models/{urllib.parse.quote(HOSTILE_NAME, safe='')}").status_code == 200

    version = world.versions["http"]
    token = csrf_of(user.get(_version_path(version)).text)
    reply = user.post(f"{_version_path(version)}/reject", data={"reason": SCRIPT, "csrf": token})
    assert reply.status_code == 200 and "Done: rejected" in reply.text
    assert get_version(world.settings, MODEL, version).tags[APPROVAL_TAG] == "rejected"
    assert version_for_alias(world.settings, MODEL, CHALLENGER) != version
    move = history(world.settings, MODEL)[-1]
    assert move.reason == f"rejected: {SCRIPT}"
    assert move.actor.startswith("Ann Reviewer (console, key ")
    page = user.get(f"/ui/models/{MODEL}").text
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the decision is made once: a second reject is refused as a conflict
    again = user.post(f"{_version_path(version)}/reject", data={"reason": "x", "csrf": token})
    assert again.status_code == 409


def test_pages_show_the_report_runs_jobs_and_security_headers(
    world: World, user: httpx.Client
) -> None:
    models = user.get("/ui/models")  # other modules share the world: its decisions vary
    assert f"/ui/models/{MODEL}/versions/{world.versions['approve']}" in models.text
    assert models.headers["content-security-policy"].startswith("default-src 'none'")
    assert models.headers["x-frame-options"] == "DENY"
    page = user.get(_version_path(world.versions["approve"])).text
    for expected in (
        "Comparison grid",
        "Logistic Regression",
        "gate_challenger_F1",
        "loopml.data_fingerprint",
        "loopml.spec_hash",
        "evaluation/holdout/roc_curve.png",
        "Reference profile",
        'name="reason"',
    ):
        assert expected in page, expected
    run = user.get(f"/ui/runs/{world.run_ids['approve']}").text
    assert "train_model" in run and "validate_model" in run and "succeeded" in run
    assert "data fingerprint" in run and "spec hash" in run and "loopml version" in run
    assert "Resume" not in run  # only a failed run offers it
    assert world.run_ids["approve"][:12] in user.get("/ui/runs").text
    assert user.get("/ui/jobs").status_code == 200
    assert user.get("/ui/monitoring").status_code == 200
    assert user.get("/ui/runs/not-a-run").status_code == 404
    assert user.get(_version_path("not-a-number")).status_code == 404
    assert user.get(_version_path("999")).status_code == 404


def test_logout_needs_the_token_and_ends_the_session(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as client:
        login(client)
        page = client.get("/ui/models").text
        assert client.post("/ui/logout", data={"x": "1"}).status_code == 403
        assert client.get("/ui/models").url.path == "/ui/models"
        client.post("/ui/logout", data={"csrf": csrf_of(page)})
        assert client.get("/ui/models").url.path == "/ui/login"


def test_the_console_is_closed_without_api_keys(world: World) -> None:
    from fastapi.testclient import TestClient

    from loopml.api import create_app

    keyless = world.settings.model_copy(update={"api_keys": []})
    with TestClient(create_app(keyless, no_auth=True), base_url="http://127.0.0.1") as client:
        assert "needs API keys" in client.get("/ui/login").text
        reply = client.post("/ui/login", data={"key": "", "who": "x"})
        assert reply.status_code == 403
        assert client.get("/ui/models", follow_redirects=False).status_code == 303


def test_monitoring_windows_link_their_report(world: World, user: httpx.Client) -> None:
    from datetime import UTC, datetime, timedelta

    from loopml.store.monitoring import CheckView, MonitorStore

    start = datetime(2026, 11, 1, tzinfo=UTC)
    checks = []
    for index in range(2):
        begin, end = start + timedelta(hours=index), start + timedelta(hours=index + 1)
        common = {
            "monitor_run_id": "console-test",
            "model_name": MODEL,
            "model_version": "1",
            "window_index": index,
            "window_start": begin,
            "window_end": end,
            "rows": 100 + index,
            "complete": True,
            "created_at": end,
        }
        drifted = index == 1
        column = {"column": "V1", "method": "psi", "score": 0.4 if drifted else 0.01}
        column |= {"threshold": 0.2, "drifted": drifted}
        checks.append(
            CheckView(
                kind="data_drift",
                status="alert" if drifted else "ok",
                figures={"columns": [column]},
                **common,
            )
        )
        findings = [f"V1 drifted {SCRIPT}"] if drifted else []
        checks.append(
            CheckView(
                kind="decision",
                status="alert" if drifted else "ok",
                figures={"findings": findings, "action": "alert" if drifted else None},
                **common,
            )
        )
    store = MonitorStore.open(world.settings.database)
    try:
        store.add_checks(checks)
    finally:
        store.engine.dispose()
    page = user.get("/ui/monitoring").text
    link = f"/ui/monitoring/{MODEL}/report#window-1"
    assert link in page and f"/ui/monitoring/{MODEL}/report#window-0" in page
    assert page.index("#window-1") < page.index("#window-0")  # newest first
    report = user.get(f"/ui/monitoring/{MODEL}/report")
    assert report.status_code == 200
    assert 'id="window-1"' in report.text and "101 rows" in report.text
    assert SCRIPT not in report.text and "&lt;script&gt;" in report.text
    assert "script-src" not in report.headers["content-security-policy"]
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
