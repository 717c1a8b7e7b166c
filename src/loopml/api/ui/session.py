"""The console's login session and CSRF tokens, signed with the API key that opened them.

A person logs in by typing one of ``LOOPML_API_KEYS`` into a form. The
cookie then holds who they said they are, when they logged in, a random
nonce and a fingerprint of the key (a truncated SHA-256, never the key),
signed with HMAC-SHA256 keyed by that API key. Nothing is kept server-side,
so several server processes share sessions, and removing a key from
``LOOPML_API_KEYS`` ends every session it opened. The cookie is HttpOnly,
SameSite=Strict, scoped to ``/ui`` and Secure on HTTPS.

Every POST carries a CSRF token: for a session, the HMAC of its nonce under
the same key (a per-session token a cross-site page cannot read); for the
login form, a double-submit token (a random cookie value repeated in the form).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

SESSION_COOKIE = "loopml_console"
LOGIN_COOKIE = "loopml_console_login"
MAX_AGE_S = 12 * 3600
MAX_NAME = 80


def fingerprint(key: str) -> str:
    """A short public name for an API key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _sign(key: str, payload: bytes) -> str:
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """A logged-in console user."""

    who: str
    key_fingerprint: str
    issued_at: int
    csrf: str

    @property
    def actor(self) -> str:
        """How the alias log names this user: their name and which API key they used."""
        return f"{self.who} (console, key {self.key_fingerprint[:8]})"


def match_key(candidate: str, keys: Sequence[str]) -> str | None:
    """The configured key equal to ``candidate`` (compared in constant time with each), or None."""
    found = None
    for key in keys:
        if hmac.compare_digest(candidate.encode(), key.encode()):
            found = key
    return found


def issue(key: str, who: str, now: float | None = None) -> str:
    """A signed session cookie value for a user who proved they hold ``key``."""
    body = {
        "who": who[:MAX_NAME],
        "kid": fingerprint(key),
        "iat": int(now if now is not None else time.time()),
        "nonce": secrets.token_hex(16),
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload.encode())}"


def read(value: str | None, keys: Sequence[str], now: float | None = None) -> Session | None:
    """The session in cookie ``value``, or None if absent, forged, expired or its key revoked."""
    if not value or value.count(".") != 1 or len(value) > 2048:
        return None
    payload, signature = value.split(".")
    try:
        body = json.loads(_unb64(payload))
        kid, issued, nonce, who = body["kid"], int(body["iat"]), body["nonce"], body["who"]
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(part, str) for part in (kid, nonce, who)):
        return None
    key = next((k for k in keys if hmac.compare_digest(fingerprint(k), kid)), None)
    if key is None or not hmac.compare_digest(_sign(key, payload.encode()), signature):
        return None
    moment = now if now is not None else time.time()
    if not 0 <= moment - issued <= MAX_AGE_S:
        return None
    return Session(who, kid, issued, _sign(key, f"csrf:{nonce}".encode()))


def csrf_ok(session: Session, token: str | None) -> bool:
    """Whether ``token`` is this session's CSRF token."""
    return bool(token) and hmac.compare_digest(session.csrf, str(token))


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def login_token_ok(cookie: str | None, form: str | None) -> bool:
    """The login form's double-submit check: the form repeats the cookie's random value."""
    return bool(cookie) and bool(form) and hmac.compare_digest(str(cookie), str(form))
