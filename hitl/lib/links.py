"""Absolute links built from HITL_BASE_URL, never from request headers (Host can be forged)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import reverse

from hitl.lib import signing

if TYPE_CHECKING:
    from hitl.models import HITLRequest

CALLBACK_PURPOSE = "callback"


def absolute(path: str) -> str:
    return f"{settings.HITL_BASE_URL}{path}"


def callback_token(request: HITLRequest) -> str:
    ttl = settings.HITL_CALLBACK_TTL
    if request.timeout_seconds:
        ttl = max(ttl, request.timeout_seconds + 3600)
    return signing.sign(CALLBACK_PURPOSE, str(request.pk), ttl=ttl)


def callback_url(request: HITLRequest) -> str:
    return absolute(reverse("api:request-callback", args=[request.pk, callback_token(request)]))
