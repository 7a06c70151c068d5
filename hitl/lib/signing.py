"""Short, expiring HMAC tokens (callback URLs now; reply-to addresses and magic links use the same).

token = <expiry, base36> "." <first 18 bytes of HMAC-SHA256, base32, lower-case>
The MAC covers a purpose string and the caller's parts, so a token for one purpose or one request is
worthless for another. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from django.conf import settings


class TokenInvalid(Exception):
    """The token is malformed or its signature does not verify."""


class TokenExpired(Exception):
    """The signature verifies but the token's lifetime is over."""


def b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if number == 0:
            return out


def secret_keys() -> list[str]:
    """SECRET_KEY, then SECRET_KEY_FALLBACKS: sign with the first, accept any, so what was signed with a
    rotated-out key keeps working until that key is dropped from the fallbacks (Django's own rule)."""
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _mac(purpose: str, parts: tuple[str, ...], expires: str, secret: str | None = None) -> str:
    secret = settings.SECRET_KEY if secret is None else secret
    key = hashlib.sha256(f"hitl.signing:{purpose}:{secret}".encode()).digest()
    message = "\x1f".join((purpose, expires, *parts)).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:18]
    return base64.b32encode(digest).decode().lower().rstrip("=")


def sign(purpose: str, *parts: str, ttl: int, since: float | None = None) -> str:
    """A token valid for `ttl` seconds from `since` (default now). A fixed `since` makes the token
    stable: the same URL every time it is built (API responses, webhooks, emails agree)."""
    expires = b36(int(time.time() if since is None else since) + ttl)
    return f"{expires}.{_mac(purpose, parts, expires)}"


def verify(token: str, purpose: str, *parts: str) -> None:
    """Raise TokenInvalid or TokenExpired; return None when the token is good."""
    expires, sep, mac = (token or "").partition(".")
    if not sep or not expires.isalnum() or not mac:
        raise TokenInvalid("malformed token")
    if not any(
        hmac.compare_digest(_mac(purpose, parts, expires, secret).encode(), mac.encode()) for secret in secret_keys()
    ):
        raise TokenInvalid("bad signature")
    if int(expires, 36) < time.time():
        raise TokenExpired("token expired")
