"""``loopml serve`` refuses untrusted versions: at start (exit code, clear error) and at a hot
swap (the old version keeps answering 200; ``/metadata`` shows the refusal) until approved."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopml.lifecycle import approve_files, move_alias
from tests.registry import small
from tests.serving.conftest import live_server, serving_settings, wait_for

SERVE = [sys.executable, "-m", "loopml", "serve", "--model"]


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {k: float(v) for k, v in row.items()}
        for row in small.frame(count, seed=5).to_dict("records")
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_refuses_to_start_on_altered_artifacts(
    tracking_uri: str, tmp_path: Path, workers: int
) -> None:
    settings = serving_settings(
        tmp_path / "home", tracking_uri, f"sqlite:///{tmp_path / 'm.db'}", trusted_registrars=[]
    )
    name = small.new_name()
    version = small.register_with_loopml(settings, name)
    move_alias(settings, name, "champion", version, reason="test")
    marker = tmp_path / "code-ran"
    small.plant_pickle(small.stored_folder(settings, name, version), marker)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(
        LOOPML_HOME=str(settings.home),
        LOOPML_TRACKING_URI=settings.tracking,
        LOOPML_DATABASE_URL=settings.database,
        LOOPML_TRUSTED_REGISTRARS="*",  # trusting every registrar still refuses altered files
        COLUMNS="300",
    )
    done = subprocess.run(
        [*SERVE, name, "--port", str(port), "--workers", str(workers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    assert f"refusing to load model {name!r} version {version}" in done.stderr
    assert "changed since it was registered" in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()


def test_hot_swap_refuses_untrusted_versions_and_keeps_serving(
    tracking_uri: str, tmp_path: Path
) -> None:
    settings = serving_settings(
        tmp_path / "home",
        tracking_uri,
        f"sqlite:///{tmp_path / 'm.db'}",
        trusted_registrars=["someone-else"],
        serve_watch_interval_s=0.3,
    )
    name = small.new_name()
    first = small.register_with_loopml(settings, name, seed=1)
    move_alias(settings, name, "champion", first, reason="test")
    altered = small.register_with_loopml(settings, name, seed=2)
    marker = tmp_path / "code-ran"
    small.plant_pickle(small.stored_folder(settings, name, altered), marker)
    outside = small.register_with_mlflow(settings, name, seed=3)
    rows = _rows(3)

    with (
        live_server(settings, f"{name}@champion") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):

        def served() -> str:
            reply = client.post("/predict", json=rows)
            assert reply.status_code == 200, reply.text
            return str(reply.json()["model"]["version"])

        assert served() == first
        for refused, why in (
            (altered, "changed since it was registered"),
            (outside, "registered outside loopml"),
        ):
            move_alias(settings, name, "champion", refused, reason="test")
            error = wait_for(
                lambda v=refused: (
                    (e := client.get("/metadata").json()["last_load_error"])
                    and e["version"] == v
                    and e
                )
            )
            assert "UntrustedModelError" in error["error"] and why in error["error"]
            assert f"version {refused}" in error["error"]
            assert error["still_serving"] == first
            assert [served() for _ in range(5)] == [first] * 5
        assert not marker.exists()

        approve_files(settings, name, outside, reason="reviewed", actor="frank")
        wait_for(lambda: served() == outside)
        metadata = client.get("/metadata").json()
        assert metadata["last_load_error"] is None
        assert metadata["model"]["version"] == outside
        assert "approved by frank" in metadata["model"]["trust"]
