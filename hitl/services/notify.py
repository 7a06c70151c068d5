"""Sending a pending request's notification again, on request."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.models import EventType
from audit.services import record_event
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.models import HITLRequest
from hitl.services.resolve import _refuse


def resend_notification(request_id: Any, *, actor: str, source: str) -> HITLRequest:
    """Send the assignee the notification again (fresh reply token and magic link). Pending only;
    it always goes to the assigned address, whoever asks for it."""
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    with transaction.atomic():
        record_event(
            EventType.NOTIFICATION_SENT,
            actor=actor,
            source=source,
            target=request,
            data={"action": "resend_requested", "to": request.assigned_to_email},
        )
        announce(request, Event.RESEND)
    return request


def record_notification_failure(request: HITLRequest, *, channel: str, event: str, detail: str) -> None:
    """A channel failed to deliver: say so on the request (admin, API) and in the audit log, never silently."""
    detail = detail[:1000]
    with transaction.atomic():
        HITLRequest.objects.filter(pk=request.pk).update(notification_error=detail)
        record_event(
            EventType.NOTIFICATION_FAILED,
            target=request,
            source=channel,
            data={"event": event, "error": detail},
        )
