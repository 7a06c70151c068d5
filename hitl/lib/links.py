"""Absolute links built from HITL_BASE_URL, never from request headers (Host can be forged)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.urls import reverse

from hitl.lib import signing


class HITLRequest(Protocol):
    """What links need of a request (hitl.models.HITLRequest); lib/ imports no app."""

    @property
    def pk(self) -> Any: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def timeout_seconds(self) -> int | None: ...
    @property
    def link_ttl_seconds(self) -> int | None: ...
    @property
    def assigned_to_email(self) -> str: ...
    @property
    def assignment_version(self) -> int: ...


CALLBACK_PURPOSE = "callback"


def absolute(path: str) -> str:
    return f"{settings.HITL_BASE_URL}{path}"


def callback_token(request: HITLRequest) -> str:
    ttl = settings.HITL_CALLBACK_TTL
    if request.timeout_seconds:
        ttl = max(ttl, request.timeout_seconds + 3600)
    since = request.created_at.timestamp() if request.created_at else None
    return signing.sign(CALLBACK_PURPOSE, str(request.pk), ttl=ttl, since=since)


def callback_principal(deployment: Any) -> str:
    """Who an answer through a callback URL is recorded as: the deployment's integrating app."""
    return f"callback:{deployment.name}"[:254]


def callback_url(request: HITLRequest) -> str:
    return absolute(reverse("api:request-callback", args=[request.pk, callback_token(request)]))


MAGIC_PURPOSE = "magic"


def magic_link_token(request: HITLRequest, email: str, ttl: int | None = None, version: int | None = None) -> str:
    """A link for `email` to open (GET: view + confirm form) and answer (POST) the request, no account.
    `version` is the assignment it is for (an approver's seat, SPEC §13); else the request's."""
    lifetime = ttl or request.link_ttl_seconds or settings.HITL_REPLY_TOKEN_TTL
    version = request.assignment_version if version is None else version
    return signing.sign(MAGIC_PURPOSE, *magic_parts(request.pk, email, version), ttl=lifetime)


def magic_parts(request_id: Any, email: str, assignment_version: int) -> tuple[str, ...]:
    """What a magic link's MAC covers: the request, the email and the assignment it was issued for
    (version 0 adds nothing, so links of never-reassigned requests issued before versions stay valid)."""
    version = (f"v{assignment_version}",) if assignment_version else ()
    return (str(request_id), email.lower(), *version)


def magic_link_url(request: HITLRequest, email: str | None = None, version: int | None = None) -> str:
    """`/r/<request id>/<email-b64>/<token>/` on HITL_BASE_URL (the review page's magic-link route)."""
    import base64

    address = (email or request.assigned_to_email).lower()
    encoded = base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")
    return absolute(f"/r/{request.pk}/{encoded}/{magic_link_token(request, address, version=version)}/")
