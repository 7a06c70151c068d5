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
