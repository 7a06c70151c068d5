"""Sending a pending request's notification again, on request."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.models import Approver, HITLRequest
from hitl.services.resolve import _refuse


def resend_notification(request_id: Any, *, actor: str, source: str, to: str = "") -> HITLRequest:
    """Send the notification again (fresh reply token and magic link). Pending only; it always goes
    to the addresses the request is for, whoever asks for it: the assignee, or on a request with
    approvers (SPEC §13) the undecided approvers, or only the seat `to` (an approver asking for a
    fresh link of their own)."""
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    with transaction.atomic():
        recipients: Any = request.assigned_to_email
        if request.has_pool:
            seats = Approver.objects.undecided(request.pk)
            if to:
                seats = seats.filter(email=to.strip().lower())
            recipients = list(seats.values_list("email", flat=True))
            Approver.objects.filter(request_id=request.pk, email__in=recipients, active=True).update(
                resend_requested_at=timezone.now()
            )
        record_event(
            EventType.NOTIFICATION_SENT,
            actor=actor,
            source=source,
            target=request,
            data={"action": "resend_requested", "to": recipients},
        )
        if recipients:
            announce(request, Event.RESEND)
    return request
