"""How fast an oversized body is refused: the jobs API's 413 against reading the same body.

    python bench/control/body_limit.py [--mb 20] [--repeat 5]

Starts ``loopml api`` (uvicorn, an API key, the embedded broker) twice on free
loopback ports: one with the default body cap (4 MiB), the anchor with the
cap raised above the body, so it reads and parses the whole body and answers
422. Sends the same ``--mb`` body to both, declared (Content-Length) and
chunked, and prints the median seconds per request and the ratio. The client
shares the machine with the servers, so absolute figures depend on what else
runs; the upload itself is part of both figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

KEY = "bench-key"


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(home: Path, cap: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {
        **os.environ,
        "LOOPML_HOME": str(home),
        "LOOPML_API_KEYS": KEY,
        "LOOPML_API_MAX_BODY_BYTES": str(cap),
    }
    env.pop("LOOPML_BROKER_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "loopml", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("loopml api did not start")


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _time(url: str, body: bytes, chunked: bool, repeat: int) -> tuple[float, int]:
    timings = []
    status = 0
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    with httpx.Client(timeout=600) as client:
        for _ in range(repeat):
            started = time.perf_counter()
            content = _chunks(body) if chunked else body
            status = client.post(f"{url}/jobs", content=content, headers=headers).status_code
            timings.append(time.perf_counter() - started)
    return statistics.median(timings), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # valid JSON, but not a job request: the anchor parses all of it, then answers 422
    body = b'{"spec": 1, "pad": "' + b"x" * (args.mb * 1024 * 1024) + b'"}'
    with tempfile.TemporaryDirectory() as folder:
        capped, capped_url = _start(Path(folder) / "capped", 4 * 1024 * 1024)
        anchor, anchor_url = _start(Path(folder) / "anchor", len(body) * 2)
        try:
            print(f"{args.mb} MB body, median of {args.repeat}")
            print(f"{'case':<28}{'capped (413)':>14}{'anchor (422)':>14}{'ratio':>8}")
            for chunked in (False, True):
                limited, limited_status = _time(capped_url, body, chunked, args.repeat)
                read, read_status = _time(anchor_url, body, chunked, args.repeat)
                assert limited_status == 413 and read_status == 422, (limited_status, read_status)
                case = "chunked" if chunked else "Content-Length"
                print(f"{case:<28}{limited:>13.3f}s{read:>13.3f}s{read / limited:>7.1f}x")
        finally:
            for process in (capped, anchor):
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    main()
