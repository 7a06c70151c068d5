"""Re-encrypting every secret at rest under the newest key (`manage.py rotate_encryption_keys`)."""

from __future__ import annotations

from django.apps import apps

from audit.models import EventType
from audit.services import record_event
from hitl.lib import crypto


def encrypted_columns() -> list[tuple[type, str]]:
    """Every (model, field name) whose column holds ciphertext, in every app."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, crypto.EncryptedTextField)
    ]


def rotate_encryption_keys(*, actor: str = "cli") -> int:
    """Re-encrypt every value not yet under the first key of HITL_ENCRYPTION_KEYS; return how many.

    Row by row with a compare-and-set on the old ciphertext, so a secret rotated meanwhile (a new
    webhook secret) is never overwritten with a stale one. Raises crypto.DecryptionError, naming the
    row, if some value no configured key can read (put the old key back at the end of the list).
    """
    rotated = 0
    for model, name in encrypted_columns():
        manager = model._default_manager  # type: ignore[attr-defined]
        for pk, token in manager.exclude(**{name: ""}).values_list("pk", name).iterator():
            if crypto.is_newest(token):
                continue
            try:
                fresh = crypto.rotate(token)
            except crypto.DecryptionError as exc:
                raise crypto.DecryptionError(f"{model._meta.label} #{pk}: {exc}") from None  # type: ignore[attr-defined]
            rotated += manager.filter(**{"pk": pk, name: token}).update(**{name: fresh})
    record_event(
        EventType.CONFIG_CHANGED,
        actor=actor,
        source="cli",
        data={"action": "encryption_keys.rotated", "count": rotated},
    )
    return rotated
