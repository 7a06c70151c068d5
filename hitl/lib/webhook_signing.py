"""Signing outbound webhooks, two ways with one secret.

The secret is one string, `whsec_<base64 of 32 random bytes>`, and a receiver passes that same string,
unchanged, to either check:

- `X-Signature: sha256=<hex>` with `X-Timestamp: <unix seconds>` (the seed's scheme):
  hex(HMAC-SHA256(key=the whole secret string as UTF-8, f"{timestamp}.{body}")), i.e. exactly the
  seed's `hmac.new(signing_secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)`;
- Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`):
  base64(HMAC-SHA256(key=base64-decode(secret without "whsec_"), f"{id}.{timestamp}.{body}")), what
  the `standardwebhooks` libraries compute from `Webhook(secret)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def seed_signature(secret: str, timestamp: int, body: str) -> str:
    """The hex digest that goes after `sha256=` in X-Signature."""
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def standard_signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `v1,<base64>` value of webhook-signature."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "X-Signature": f"sha256={seed_signature(secret, timestamp, body)}",
        "X-Timestamp": str(timestamp),
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, message_id, timestamp, body),
    }
