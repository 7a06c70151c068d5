"""The audit log's two keys, both read from the environment (settings), never stored in the database.

- `HITL_AUDIT_KEY` keys every event's hash (HMAC-SHA256): whoever can write the database but does not
  hold it cannot re-hash a rewritten history. `HITL_AUDIT_KEY_FALLBACKS` holds earlier keys, newest
  first, so events sealed before a rotation still verify.
- `HITL_AUDIT_SIGNING_KEY` (an Ed25519 private key, 32 bytes in url-safe base64) signs checkpoints.
  `HITL_AUDIT_VERIFY_KEYS` lists the public keys of earlier signing keys, so checkpoints signed before a
  rotation still verify. Each checkpoint names its key by `key_id` (the first 16 hex digits of the
  SHA-256 of the raw public key).

Without `HITL_AUDIT_KEY` (development, or a production that ignored `manage.py check`'s hitl.W002) the
HMAC key is derived from SECRET_KEY, which is outside the database too, but rotates with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings


class AuditKeyError(Exception):
    """A key is missing or malformed."""


def _b64decode(value: str) -> bytes:
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def hmac_keys() -> list[bytes]:
    """The HMAC keys, current first, then the fallbacks."""
    current = settings.HITL_AUDIT_KEY or ("hitl-audit-derived:" + settings.SECRET_KEY)
    return [k.encode() for k in [current, *settings.HITL_AUDIT_KEY_FALLBACKS] if k]


def keyed_hash(message: bytes, key: bytes | None = None) -> str:
    return hmac.new(key if key is not None else hmac_keys()[0], message, hashlib.sha256).hexdigest()


def generate_signing_key() -> str:
    """A new private key for HITL_AUDIT_SIGNING_KEY (`manage.py audit_checkpoint --generate-key`)."""
    private = Ed25519PrivateKey.generate()
    return b64encode(private.private_bytes_raw())


def signing_key() -> Ed25519PrivateKey:
    value = settings.HITL_AUDIT_SIGNING_KEY
    if not value:
        raise AuditKeyError("HITL_AUDIT_SIGNING_KEY is not set: checkpoints cannot be signed")
    try:
        return Ed25519PrivateKey.from_private_bytes(_b64decode(value))
    except ValueError as exc:
        raise AuditKeyError("HITL_AUDIT_SIGNING_KEY is not 32 bytes of url-safe base64 (an Ed25519 key)") from exc


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_key_of(private_b64: str) -> str:
    return b64encode(raw_public(Ed25519PrivateKey.from_private_bytes(_b64decode(private_b64)).public_key()))


def trusted_public_keys(extra: list[str] | None = None) -> dict[str, Ed25519PublicKey]:
    """key_id → public key: the current signing key's, HITL_AUDIT_VERIFY_KEYS, and `extra`."""
    found: dict[str, Ed25519PublicKey] = {}
    if settings.HITL_AUDIT_SIGNING_KEY:
        public = signing_key().public_key()
        found[key_id(raw_public(public))] = public
    for value in [*settings.HITL_AUDIT_VERIFY_KEYS, *(extra or [])]:
        try:
            raw = _b64decode(value)
            found[key_id(raw)] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise AuditKeyError(f"not an Ed25519 public key in url-safe base64: {value!r}") from exc
    return found


def sign(message: bytes) -> tuple[str, str]:
    """(key_id, signature in url-safe base64)."""
    private = signing_key()
    return key_id(raw_public(private.public_key())), b64encode(private.sign(message))


def verify_signature(public: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        public.verify(_b64decode(signature_b64), message)
    except (InvalidSignature, ValueError):
        return False
    return True
