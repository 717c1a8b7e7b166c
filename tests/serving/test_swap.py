"""Hot swap under load: the alias moves while clients keep sending; no request fails."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx

from loopml.core.settings import Settings
from loopml.registry.models import register_version, set_alias
from loopml.registry.tracking import use_tracking
from tests.serving.conftest import Registered, live_server, sample_rows, serving_settings, wait_for


def _broken_version(settings: Settings, name: str, folder: Path) -> str:
    """A registered version whose files cannot be loaded (its loader module does not exist)."""
    folder.mkdir()
    (folder / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: loopml_no_such_loader\n"
    )
    client = use_tracking(settings).MlflowClient()
    return str(client.create_model_version(name, folder.as_uri()).version)


def test_alias_move_swaps_without_a_failed_request(registered: Registered, tmp_path: Path) -> None:
    settings = serving_settings(
        tmp_path / "home",
        registered.tracking_uri,
        f"sqlite:///{tmp_path / 'log.db'}",
        serve_watch_interval_s=0.3,
    )
    name = "fraud_swap"
    first = register_version(settings, registered.source, name, {}).version
    set_alias(settings, name, "champion", first)
    second = register_version(settings, registered.source, name, {}).version
    rows = sample_rows(2)
    answers: list[tuple[float, float, int, str | None]] = []  # sent, received, status, version
    stop = threading.Event()

    def keep_sending(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    reply = client.post("/predict", json=rows)
                except httpx.HTTPError:
                    answers.append((sent, time.monotonic(), 0, None))
                    continue
                version = reply.json()["model"]["version"] if reply.status_code == 200 else None
                answers.append((sent, time.monotonic(), reply.status_code, version))

    with live_server(settings, f"{name}@champion") as server:
        clients = [threading.Thread(target=keep_sending, args=(server.url,)) for _ in range(3)]
        for thread in clients:
            thread.start()
        try:
            wait_for(lambda: len(answers) >= 20)
            moved_at = time.monotonic()
            set_alias(settings, name, "champion", second)
            switched_at = wait_for(
                lambda: min((r for _, r, _, v in answers if v == second), default=None)
            )
            wait_for(lambda: sum(1 for *_, v in answers if v == second) >= 20)

            broken = _broken_version(settings, name, tmp_path / "broken")
            set_alias(settings, name, "champion", broken)
            error = wait_for(lambda: httpx.get(f"{server.url}/metadata").json()["last_load_error"])
            settled = len(answers)
            wait_for(lambda: len(answers) >= settled + 20)
            metadata = httpx.get(f"{server.url}/metadata").json()
            metrics = httpx.get(f"{server.url}/metrics").text
        finally:
            stop.set()
            for thread in clients:
                thread.join(30)

    assert [a for a in answers if a[2] != 200] == []  # zero failed requests
    load_seconds = server.app.state.serving.slot.current.load_seconds
    assert switched_at - moved_at <= 0.3 + load_seconds + 5.0  # interval + load, with slack
    # once a request had been answered by the new version, no later request met the old one
    assert all(v == second for sent, _, _, v in answers if sent > switched_at)
    assert {v for *_, v in answers} == {first, second}

    assert error["version"] == broken and error["still_serving"] == second
    assert "loopml_no_such_loader" in error["error"]
    assert metadata["model"]["version"] == second and metadata["swaps"] == 1
    failures = re.search(r"^loopml_model_load_failures (\S+)$", metrics, re.MULTILINE)
    assert failures is not None and float(failures.group(1)) >= 1
    assert all(v == second for *_, v in answers[settled:])
