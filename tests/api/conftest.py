"""A jobs API on a real uvicorn server on a free loopback port, with an API key."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from loopml.api import create_app
from loopml.core.settings import Settings
from tests.queue.helpers import wait_for

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_api(settings: Settings, **options: Any) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1; its base URL."""
    port = free_port()
    app = create_app(settings, bind_host="127.0.0.1", port=port, **options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def api_client(url: str, **options: Any) -> httpx.Client:
    """An httpx client for the API at ``url`` that sends the key."""
    options.setdefault("timeout", 30)
    return httpx.Client(base_url=url, headers=AUTH, **options)
