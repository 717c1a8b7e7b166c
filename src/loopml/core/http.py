"""Pure ASGI guards both servers put in front of their apps: API keys, Host header, body size.

They live in ``core`` because the jobs API and the model server are independent
faces that may not import each other. Everything here answers before the app
sees the request, so a refused request costs no parsing: an unauthenticated
client never gets its body read, and a body over the limit is answered 413
as soon as its declared length (``Content-Length``) or its running byte count
(chunked uploads) passes the limit.

Starlette's ``TrustedHostMiddleware`` is not used for the Host check: it cuts
the port at the first ``:``, which breaks IPv6 literals (``[::1]:8100``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def bearer_ok(scope: Scope, keys: Sequence[bytes]) -> bool:
    """Whether the request carries ``Authorization: Bearer <one of keys>`` (constant-time)."""
    value = header(scope, b"authorization")
    if value is None:
        return False
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    token = token.strip()
    found = False
    for key in keys:  # compare with every key, so timing does not tell which one matched
        found = hmac.compare_digest(token, key) | found
    return found


def bracketed(host: str) -> str:
    """``host`` as it appears in a Host header: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(bind_host: str, port: int | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values a server bound at ``bind_host:port`` accepts.

    Each name is accepted bare and with the port; ``extra`` entries are taken
    as written (``api.example.org`` or ``api.example.org:443``) and lower-cased.
    A wildcard bind (``0.0.0.0``, ``::``) is not a name a client uses, so it
    adds nothing: name the public host in the allow-list instead. Without a
    known ``port`` the names are accepted with any port (``name:*``).
    """
    names = {*LOOPBACK_HOSTS}
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(bracketed(bind_host.lower()))
    allowed = set(names)
    allowed |= {f"{name}:{port if port is not None else '*'}" for name in names}
    allowed |= {entry.strip().lower() for entry in extra if entry.strip()}
    return frozenset(allowed)


def host_ok(scope: Scope, allowed: frozenset[str]) -> bool:
    """Whether the request's Host header is in ``allowed`` (``*`` allows any)."""
    if "*" in allowed:
        return True
    value = header(scope, b"host")
    if value is None:
        return False
    host = value.decode("latin-1").strip().lower()
    if host in allowed:
        return True
    name, colon, port = host.rpartition(":")
    return bool(colon) and port.isdigit() and not name.endswith(":") and f"{name}:*" in allowed


def declared_length(scope: Scope) -> int | None:
    """The body length the client declared; ``-1`` for a malformed Content-Length."""
    value = header(scope, b"content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return -1
    return length if length >= 0 else -1


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` as soon as more than ``limit`` bytes arrived.

    Bytes are counted as they arrive, so a chunked upload without a declared
    length is stopped at the limit, not read to its end.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` once, then waits on the real channel."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


async def answer(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Send a complete JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def too_large_body(limit: int, setting: str) -> bytes:
    """The 413 body: what the limit is and which setting raises it."""
    import json

    return json.dumps(
        {
            "error": f"request body larger than {limit} bytes; send less per request "
            f"or raise {setting}",
            "error_code": "PAYLOAD_TOO_LARGE",
        }
    ).encode()


async def limit_body(
    scope: Scope, receive: Receive, send: Send, limit: int, setting: str
) -> Receive | None:
    """A ``receive`` replaying the body when it fits in ``limit``; else answers 413, ``None``.

    A declared length over the limit is refused without reading a byte;
    anything else is read, counted, and refused the moment it passes the limit.
    The connection is left open: uvicorn discards the rest of the upload
    without buffering it, and the client, still sending, gets to read the 413
    (closing instead would reset the connection under its feet).
    """
    length = declared_length(scope)
    if length == -1:
        malformed = b'{"error":"malformed Content-Length header","error_code":"BAD_REQUEST"}'
        await answer(send, 400, malformed)
        return None
    if length is not None and length > limit:
        await answer(send, 413, too_large_body(limit, setting))
        return None
    body = await read_body(receive, limit)
    if body is None:
        await answer(send, 413, too_large_body(limit, setting))
        return None
    return replay(body, receive)


UNAUTHORIZED_BODY = (
    b'{"error":"missing or unknown API key: send the header '
    b'Authorization: Bearer <key>","error_code":"UNAUTHENTICATED"}'
)


async def unauthorized(send: Send) -> None:
    """Answer 401 with the header that names the scheme."""
    await answer(send, 401, UNAUTHORIZED_BODY, [(b"www-authenticate", b"Bearer")])


async def bad_host(send: Send) -> None:
    """Answer 400 for a Host header outside the allow-list (DNS rebinding, wrong vhost)."""
    body = (
        b'{"error":"Host header not allowed here; add the name clients use to '
        b'LOOPML_API_ALLOWED_HOSTS","error_code":"BAD_HOST"}'
    )
    await answer(send, 400, body)
