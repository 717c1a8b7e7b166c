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

Everything a client sends is compared as SHA-256 digests (``same``): in
constant time whatever its length or characters (``hmac.compare_digest`` raises
on non-ASCII text, and leaks the length of what it compares). A cookie's
signature is checked before its payload is decoded, so nothing a stranger
wrote is ever parsed. Logging out revokes the session's nonce in this process
(``Revocations``): a copy of the cookie no longer opens anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

SESSION_COOKIE = "loopml_console"
LOGIN_COOKIE = "loopml_console_login"
MAX_AGE_S = 12 * 3600
MAX_NAME = 80


def fingerprint(key: str) -> str:
    """A short public name for an API key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def same(given: str | None, expected: str) -> bool:
    """Whether ``given`` equals ``expected``, in constant time for any length or characters."""
    if given is None:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest(given.encode("utf-8", "surrogatepass")).digest(),
        digest(expected.encode("utf-8", "surrogatepass")).digest(),
    )


BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def control_character(text: str) -> str | None:
    """The first control, line-separator or bidi-control character in ``text`` (``U+XXXX``).

    Names and reasons land in the alias log, which ``loopml models history``
    prints to terminals: an escape sequence could repaint them, a bidi
    override reverse what people read, a NUL cannot be stored by PostgreSQL.
    Joiners (emoji sequences, Persian script) are text, and allowed.
    """
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS:
            return f"U+{ord(char):04X}"
    return None


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
    nonce: str = ""

    @property
    def actor(self) -> str:
        """How the alias log names this user: their name and which API key they used."""
        return f"{self.who} (console, key {self.key_fingerprint[:8]})"


def match_key(candidate: str, keys: Sequence[str]) -> str | None:
    """The configured key equal to ``candidate`` (compared in constant time with each), or None."""
    found = None
    for key in keys:
        if same(candidate, key):
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


class Revocations:
    """Nonces of sessions logged out in this process, each kept until its cookie expires.

    The cookie is stateless, so logging out could only ask the browser to forget
    it; a copy (another tab's, a stolen one) would open the console until it
    expired. This list closes it. It lives in the server's memory: ``loopml
    api`` is one process; replicas behind a load balancer each keep their own
    (docs/security.md).
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def revoke(self, session: Session, now: float | None = None) -> None:
        moment = now if now is not None else time.time()
        with self._lock:
            self._until = {n: t for n, t in self._until.items() if t > moment}
            self._until[session.nonce] = session.issued_at + MAX_AGE_S

    def __contains__(self, nonce: object) -> bool:
        with self._lock:
            return nonce in self._until


def read(
    value: str | None,
    keys: Sequence[str],
    now: float | None = None,
    revoked: Revocations | None = None,
) -> Session | None:
    """The session in cookie ``value``, or None if absent, forged, expired, logged out or its
    key revoked. The signature is checked first: an unsigned payload is never decoded."""
    if not value or value.count(".") != 1 or len(value) > 2048 or not value.isascii():
        return None
    payload, signature = value.split(".")
    key = next((k for k in keys if same(signature, _sign(k, payload.encode()))), None)
    if key is None:
        return None
    try:
        body = json.loads(_unb64(payload))
        kid, issued, nonce, who = body["kid"], int(body["iat"]), body["nonce"], body["who"]
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None
    if not all(isinstance(part, str) for part in (kid, nonce, who)):
        return None
    if not same(kid, fingerprint(key)) or (revoked is not None and nonce in revoked):
        return None
    moment = now if now is not None else time.time()
    if not 0 <= moment - issued <= MAX_AGE_S:
        return None
    return Session(who, kid, issued, _sign(key, f"csrf:{nonce}".encode()), nonce)


def csrf_ok(session: Session, token: str | None) -> bool:
    """Whether ``token`` is this session's CSRF token."""
    return bool(token) and same(token, session.csrf)


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def login_token_ok(cookie: str | None, form: str | None) -> bool:
    """The login form's double-submit check: the form repeats the cookie's random value."""
    return bool(cookie) and bool(form) and same(form, str(cookie))
