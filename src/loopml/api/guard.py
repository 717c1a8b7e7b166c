"""The jobs API's front door, one pure ASGI layer: Host allow-list, API key, body size.

In that order: a request for another Host (DNS rebinding, a wrong virtual
host) is answered 400, one without a valid key 401 (health and the console,
which has its own login, excepted), and a
body over ``LOOPML_API_MAX_BODY_BYTES`` 413, each before the app parses anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopml.core import http

HEALTH_PATHS = frozenset({"/health"})
CONSOLE_PREFIX = "/ui"
"""The review console's pages: a browser cannot send a bearer key, so the console checks
its own signed session cookie and CSRF token (``loopml.api.ui.session``)."""


def console_path(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


class ControlGate:
    """Host, key and size checks in front of the jobs app."""

    def __init__(
        self,
        app: http.ASGIApp,
        *,
        api_keys: Sequence[str],
        hosts: frozenset[str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.keys = [key.encode() for key in api_keys]
        self.hosts = hosts
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not http.host_ok(scope, self.hosts):
            await http.bad_host(send)
            return
        path = scope["path"]
        open_path = path in HEALTH_PATHS or console_path(path)
        if not open_path and self.keys and not http.bearer_ok(scope, self.keys):
            await http.unauthorized(send)
            return
        replayed = await http.limit_body(
            scope, receive, send, self.max_body_bytes, "LOOPML_API_MAX_BODY_BYTES"
        )
        if replayed is not None:
            await self.app(scope, replayed, send)
