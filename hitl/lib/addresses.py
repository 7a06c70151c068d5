"""Email addresses as the server stores and compares them: validated, trimmed, lower-case."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def clean_email(value: Any) -> str | None:
    """The value as a normalised email address, or None if it is not one."""
    if not isinstance(value, str):
        return None
    candidate = value.strip()
    try:
        validate_email(candidate)
    except ValidationError:
        return None
    return candidate.lower()


def email_list_error(value: Any) -> str | None:
    """Why `value` is not a list of email addresses (an escalation chain), or None if it is one."""
    if value in (None, ""):
        return None
    if not isinstance(value, list):
        return 'A JSON list of email addresses, e.g. ["lead@example.com", "head@example.com"].'
    bad = [item for item in value if clean_email(item) is None]
    if bad:
        return f"Not valid email addresses: {', '.join(repr(item) for item in bad)}."
    return None
