"""The review console in a real browser: Playwright driving Debian's Chromium.

A person logs in with a key, approves a waiting challenger and sees it become
champion while a running ``loopml serve`` (a real process on a free port)
swaps to it; rejects another; rolls back (and the server swaps back). A form
whose CSRF token was stripped and a POST from a session-less context are
refused. With ``LOOPML_SCREENSHOTS=docs/img`` the main pages are captured at
1280 px and at a phone's width (docs/console.md shows them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopml.lifecycle import history
from loopml.lifecycle.aliases import REJECTED
from loopml.registry.models import APPROVAL_TAG, CHAMPION, get_version, version_for_alias
from tests.api.conftest import running_api
from tests.console.conftest import KEY, MODEL, World, free_port
from tests.queue.helpers import wait_for

CHROMIUM = "/usr/bin/chromium"
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def console(world: World) -> Iterator[str]:
    with running_api(world.settings) as url:
        yield url


@pytest.fixture(scope="module")
def served(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``loopml serve`` of the champion, following the alias every half second."""
    folder = tmp_path_factory.mktemp("serve")
    settings = world.settings
    port = free_port()
    env = {
        **os.environ,
        "LOOPML_HOME": str(folder / "home"),
        "LOOPML_TRACKING_URI": settings.tracking,
        "LOOPML_DATABASE_URL": settings.database,
        "LOOPML_ARTIFACT_ROOT": settings.artifacts,
    }
    command = [sys.executable, "-m", "loopml", "serve", "--model", f"{MODEL}@champion"]
    command += ["--port", str(port), "--watch-interval", "0.5"]
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, (folder / "serve.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/ping", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        yield Served(url, up)  # not waited for here: it starts while the browser logs in
    finally:
        process.terminate()
        process.wait(30)
        log.close()


class Served:
    """The ``loopml serve`` process: its URL, and a wait until it answers."""

    def __init__(self, url: str, up: Any) -> None:
        self.url = url
        self.up = up
        self.ready = False

    def version(self) -> str:
        """The version it serves now (``/metadata``), once it is up."""
        if not self.ready:
            wait_for(self.up, timeout=180, what="loopml serve to answer /ping")
            self.ready = True
        return str(httpx.get(f"{self.url}/metadata", timeout=10).json()["model"]["version"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"no {CHROMIUM}: scripts/install-tools.sh installs it (apt-get install -y chromium)"
    )
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def page(browser: Any, console: str) -> Iterator[Any]:
    context = browser.new_context(base_url=console, viewport=WIDE)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def log_in(page: Any, who: str = "Ann Reviewer") -> None:
    page.goto("/ui/models")
    assert "/ui/login" in page.url
    page.fill("input[name=who]", who)
    page.fill("input[name=key]", KEY)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/models")


def shoot(page: Any, name: str) -> None:
    """Screenshots at both widths, into $LOOPML_SCREENSHOTS when set (docs/img)."""
    folder = os.environ.get("LOOPML_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")  # the plots are separate requests
    for label, size in (("1280", WIDE), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(Path(folder) / f"console-{name}-{label}.png"), full_page=True)
    page.set_viewport_size(WIDE)


def decide(page: Any, verb: str, reason: str) -> None:
    form = page.locator(f"form[action$='/{verb}']")
    form.locator("input[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()


def test_approve_makes_the_challenger_champion_and_the_server_swaps(
    world: World, page: Any, served: Served, browser: Any, console: str
) -> None:
    champion, waiting = world.versions["champion"], world.versions["approve"]
    login_page = browser.new_page(base_url=console, viewport=WIDE)
    login_page.goto("/ui/login")
    shoot(login_page, "login")
    login_page.close()

    log_in(page)
    assert "waiting for approval" in page.content()
    shoot(page, "models")
    page.goto(f"/ui/models/{MODEL}/versions/{waiting}")
    assert page.locator("h1").inner_text().startswith(MODEL)
    shoot(page, "version")
    # the browser cannot submit without a reason: the field is required
    page.locator("form[action$='/approve'] button[type=submit]").click()
    assert get_version(world.settings, MODEL, waiting).tags[APPROVAL_TAG] == "pending"

    assert served.version() == champion  # the server is up (it started while we logged in)
    decide(page, "approve", "holdout F1 checked with the fraud team")
    assert "Done: approved" in page.content()
    assert "champion" in page.locator("h1").inner_text()
    assert version_for_alias(world.settings, MODEL, CHAMPION) == waiting
    wait_for(lambda: served.version() == waiting, timeout=90, what="the server to swap")


def test_reject_a_waiting_challenger(world: World, page: Any) -> None:
    version = world.versions["reject"]
    log_in(page)
    page.goto(f"/ui/models/{MODEL}/versions/{version}")
    decide(page, "reject", "recall too low on the March fraud ring")
    assert "Done: rejected" in page.content()
    assert get_version(world.settings, MODEL, version).tags[APPROVAL_TAG] == "rejected"
    # challenger had moved on to a newer version: the rejection is logged as the marker's move
    move = history(world.settings, MODEL)[-1]
    assert (move.alias, move.to_version) == (REJECTED, version)
    assert move.reason == "rejected: recall too low on the March fraud ring"
    assert version_for_alias(world.settings, MODEL, CHAMPION) == world.versions["approve"]


def test_roll_back_and_the_server_follows(world: World, page: Any, served: Served) -> None:
    log_in(page)
    page.goto(f"/ui/models/{MODEL}")
    decide(page, "rollback", "alerts spiked after the swap")
    assert "Done: rolled back" in page.content()
    champion = world.versions["champion"]
    assert version_for_alias(world.settings, MODEL, CHAMPION) == champion
    assert "alerts spiked after the swap" in page.locator("table").last.inner_text()
    shoot(page, "model")
    wait_for(lambda: served.version() == champion, timeout=90, what="the swap back")
    page.goto("/ui/runs")
    shoot(page, "runs")
    page.goto(f"/ui/runs/{world.run_ids['approve']}")
    shoot(page, "run")


def test_posts_without_the_csrf_token_or_a_session_are_refused(
    world: World, page: Any, browser: Any, console: str
) -> None:
    champion = version_for_alias(world.settings, MODEL, CHAMPION)
    log_in(page)
    page.goto(f"/ui/models/{MODEL}/versions/{world.versions['approve']}")
    # strip the token from the form, as a forged page would lack it, then submit for real
    page.evaluate(
        "document.querySelectorAll('form[action$=\"/promote\"] input[name=csrf]')"
        ".forEach(e => e.remove())"
    )
    decide(page, "promote", "no token")
    assert "CSRF" in page.content()
    reply = page.request.post(
        f"/ui/models/{MODEL}/versions/{world.versions['approve']}/promote",
        form={"reason": "the session's cookie but no token"},
    )
    assert reply.status == 403
    stranger = browser.new_context(base_url=console)
    try:
        token = page.locator("form.logout input[name=csrf]").get_attribute("value")
        refused = stranger.request.post(
            f"/ui/models/{MODEL}/versions/{world.versions['approve']}/promote",
            form={"reason": "a token but no session", "csrf": token},
        )
        assert refused.status == 403
    finally:
        stranger.close()
    assert version_for_alias(world.settings, MODEL, CHAMPION) == champion
