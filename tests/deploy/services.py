"""The cluster's processes on loopback: each in its own folder, on free ports, logs kept.

Every process gets its own working directory, ``LOOPML_HOME`` and ``TMPDIR`` under its
folder, so a test can say exactly where each one was allowed to write. Credentials reach
only the processes that need them (the S3 server and the MLflow server, which proxies
artifacts); loopml's own processes get none.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.queue.helpers import wait_for

VENV_BIN = Path(sys.executable).parent
S3_ACCESS_KEY, S3_SECRET_KEY = "loopml-test", "loopml-test-secret-0123456789"
BUCKET = "loopml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(size: int) -> int:
    """A first port of ``size`` consecutive free ones (weed mini wants many)."""
    for _ in range(200):
        base = free_port()
        if base + size >= 65535:
            continue
        ports = range(base, base + size)
        if all(_port_free(port) for port in ports):
            return base
    raise RuntimeError(f"no block of {size} free ports on 127.0.0.1")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def base_env() -> dict[str, str]:
    """This process's environment without any loopml, MLflow or AWS setting."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOOPML_", "MLFLOW_", "AWS_"))
    }


@dataclass
class Service:
    """One process of the topology: its folder, command, environment and log."""

    name: str
    folder: Path
    command: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def start(self) -> Service:
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**base_env(), **self.env}
        env.setdefault("TMPDIR", str(self.folder / "tmp"))
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("COLUMNS", "200")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.command),
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        assert self.alive, (
            f"{self.name} exited ({self.process and self.process.returncode}):\n{self.tail()}"
        )

    def kill(self) -> None:
        """SIGKILL the process group: a machine that vanished."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL whatever is left of the group."""
        if self.process is None:
            return
        if self.alive:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """One JSON request; (status, decoded body) for any status, errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_http(url: str, service: Service, *, timeout: float, ok: Callable[[int], bool]) -> None:
    """Wait until ``url`` answers with a status ``ok`` accepts, failing early if it died."""

    def answered() -> bool:
        service.check_alive()
        try:
            status, _ = http("GET", url, timeout=5)
        except OSError:
            return False
        return ok(status)

    wait_for(answered, timeout=timeout, interval=0.5, what=f"{service.name} at {url}")


def seaweed_s3(folder: Path) -> tuple[Service, str]:
    """``weed mini`` on loopback only, with one identity and the bucket made at start."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    identity = {
        "name": "loopml",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    base = free_port_block(13)
    # Every listener is named: weed mini's defaults are fixed ports on all interfaces.
    ports = {
        "master.port": base,
        "master.port.grpc": base + 1,
        "volume.port": base + 2,
        "volume.port.grpc": base + 3,
        "filer.port": base + 4,
        "filer.port.grpc": base + 5,
        "s3.port": base + 6,
        "s3.port.grpc": base + 7,
        "admin.port": base + 8,
        "admin.port.grpc": base + 9,
        "webdav.port": base + 10,
        "s3.port.iceberg": base + 11,
        "s3.port.lance": base + 12,
    }
    command = [
        str(VENV_BIN / "weed"),
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    (folder / "data").mkdir(exist_ok=True)
    return Service("s3", folder, command), f"http://127.0.0.1:{ports['s3.port']}"


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )


def s3_keys(endpoint: str, prefix: str = "") -> list[str]:
    client = s3_client(endpoint)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def wait_s3(endpoint: str, service: Service, timeout: float = 90) -> None:
    def bucket_listed() -> bool:
        service.check_alive()
        try:
            return BUCKET in {b["Name"] for b in s3_client(endpoint).list_buckets()["Buckets"]}
        except Exception:
            return False

    wait_for(bucket_listed, timeout=timeout, interval=0.5, what=f"bucket {BUCKET} at {endpoint}")


def mlflow_server(folder: Path, backend: str, s3_endpoint: str) -> tuple[Service, str]:
    """``mlflow server``: PostgreSQL backend, artifacts proxied to the S3 bucket.

    The server alone holds the S3 credentials (``--serve-artifacts``): clients log and
    load artifacts through ``mlflow-artifacts:/`` URIs over HTTP.
    """
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        f"s3://{BUCKET}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # loopml uses no server-side jobs
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
    }
    return Service("mlflow", folder, command, env), f"http://127.0.0.1:{port}"


def loopml(name: str, folder: Path, args: Sequence[str], env: dict[str, str]) -> Service:
    """A loopml process with its own home under its folder."""
    own = {**env, "LOOPML_HOME": str(folder / "home")}
    return Service(name, folder, [sys.executable, "-m", "loopml", *args], own)


def run_cli(
    folder: Path, args: Sequence[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """One loopml command run as a person would, from ``folder``, with its own home."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    full = {
        **base_env(),
        **env,
        "LOOPML_HOME": str(folder / "home"),
        "TMPDIR": str(folder / "tmp"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "loopml", *args],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_under(folder: Path, skip: Sequence[Path] = ()) -> list[Path]:
    """Every file below ``folder``, except below the ``skip`` folders."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            found.append(path)
    return sorted(found)


def elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.0f} s"
