"""``loopml serve``: bad references fail fast with exit code 2; the real command serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import Settings
from tests.serving.conftest import Registered, sample_rows


def test_serve_reports_a_missing_alias(loopml_env: Settings) -> None:
    result = CliRunner().invoke(app, ["serve", "--model", "nobody_registered_this@champion"])
    assert result.exit_code == 2
    assert "has the alias 'champion'" in result.output


def test_serve_command_with_two_workers(registered: Registered, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "LOOPML_HOME": str(tmp_path / "home"),
        "LOOPML_TRACKING_URI": registered.tracking_uri,
        "LOOPML_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "LOOPML_TRUSTED_REGISTRARS": "*",  # registered with another metadata store
    }
    command = [sys.executable, "-m", "loopml", "serve", "--model", f"{registered.name}@champion"]
    command += ["--port", str(port), "--workers", "2", "--api-key", "k", "--watch-interval", "5"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{url}/ping").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.3)
        headers = {"Authorization": "Bearer k"}
        reply = httpx.post(f"{url}/predict", json=sample_rows(2), headers=headers)
        assert reply.status_code == 200, reply.text
        assert httpx.post(f"{url}/predict", json=sample_rows(2)).status_code == 401
        watch = httpx.get(f"{url}/metadata", headers=headers).json()["watch"]
        assert watch["interval_s"] == 5.0
    finally:
        process.terminate()
        process.wait(30)
