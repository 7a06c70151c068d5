"""Secrets at rest (webhook signing secrets; later bot tokens): Fernet, keyed by HITL_ENCRYPTION_KEYS.

`HITL_ENCRYPTION_KEYS` is a comma-separated list of Fernet keys, newest first: MultiFernet encrypts
with the first and decrypts with any, so a new key can be put in front at any time and
`manage.py rotate_encryption_keys` then re-encrypts every stored secret under it; after that the old
key can be dropped. With DEBUG on and no keys set, a key is derived from SECRET_KEY so `make run`
works out of the box (production refuses to store secrets without real keys: a leaked SECRET_KEY
should not also unlock every stored secret).

Columns holding ciphertext are `EncryptedTextField`s, so the rotation command finds all of them.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """No configured key decrypts the value (a key was dropped before rotating?)."""


def derived_key() -> bytes:
    """A Fernet key derived from SECRET_KEY, for development only."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hitl.encryption-key.v1").derive(
        settings.SECRET_KEY.encode()
    )
    return base64.urlsafe_b64encode(raw)


def _keys() -> list[bytes]:
    keys = [key.encode() for key in settings.HITL_ENCRYPTION_KEYS]
    if settings.DEBUG:
        # Development: the derived key works alone, and stays readable (last, decrypt-only in
        # practice) after real keys are configured, so rotating moves dev secrets onto them.
        keys.append(derived_key())
    if not keys:
        raise ImproperlyConfigured(
            "HITL_ENCRYPTION_KEYS is not set: generate a key with "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
        )
    return keys


def _multi() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in _keys()])
    except ValueError as exc:
        raise ImproperlyConfigured(f"HITL_ENCRYPTION_KEYS holds an invalid Fernet key: {exc}") from None


def encrypt(plaintext: str) -> str:
    return _multi().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _multi().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("no key in HITL_ENCRYPTION_KEYS decrypts this value") from None


def rotate(token: str) -> str:
    """The same plaintext, encrypted under the newest key."""
    try:
        return _multi().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("no key in HITL_ENCRYPTION_KEYS decrypts this value") from None


def is_newest(token: str) -> bool:
    """Whether `token` is already encrypted under the first key (rotation skips those)."""
    try:
        Fernet(_keys()[0]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


class EncryptedTextField(models.TextField):
    """A column that holds a Fernet token, never plaintext. It does not decrypt on load (callers ask
    for the plaintext explicitly, so it cannot leak into a form, a log or a serializer by accident);
    it marks the column for `rotate_encryption_keys`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
