"""Changing who a pending request is assigned to: a manager's reassignment, the assignee's delegation,
and (through `_reassign`) the escalation chain's steps."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.lib.addresses import clean_email
from hitl.lib.errors import InvalidInput, NotAllowed
from hitl.models import AssignmentStep, HITLRequest, Source, Status
from hitl.services.resolve import _refuse


def reassign_request(
    request_id: Any, *, email: str, actor: str, note: str = "", source: str = Source.API
) -> HITLRequest:
    new_email = clean_email(email)
    if not new_email:
        raise InvalidInput({"email": ["Must be a valid email address."]})
    with transaction.atomic():
        request = HITLRequest.objects.select_for_update().get(pk=request_id)
        if request.is_pending and _reassign(
            request,
            new_email=new_email,
            actor=actor,
            source=source,
            step=AssignmentStep.REASSIGNED,
            data={"note": note},
        ):
            return request
    # Refused outside the transaction, so the refusal's audit event commits (SPEC §10).
    _refuse(request, actor=actor, source=source, reason="not_pending", action="reassign")


def delegate_request(
    request_id: Any, *, email: str, actor: str, note: str = "", source: str = Source.DASHBOARD
) -> HITLRequest:
    """The assignee hands a pending request over to someone else (beyond the seeds, SPEC §12).

    `actor` must be the current assignee's email; the compare-and-set includes it, so a delegation
    racing a manager's reassignment cannot take the request back from its new assignee. Every refusal
    is audited, after the transaction so its event is not rolled back with it.
    """
    new_email = clean_email(email)
    if not new_email:
        raise InvalidInput({"email": ["Must be a valid email address."]})
    with transaction.atomic():
        request = HITLRequest.objects.select_for_update().get(pk=request_id)
        current = request.assigned_to_email.lower()
        if not request.is_pending:
            refusal = "not_pending"
        elif actor.lower() != current:
            refusal = "not_assignee"
        elif new_email == current:
            raise InvalidInput({"email": ["The request is already assigned to this address."]})
        elif _reassign(
            request,
            new_email=new_email,
            actor=actor,
            source=source,
            step=AssignmentStep.DELEGATED,
            data={"note": note, "delegated": True},
            guard={"assigned_to_email": request.assigned_to_email},
        ):
            return request
        else:
            refusal = "reassigned_meanwhile"
    if refusal == "not_pending":
        _refuse(request, actor=actor, source=source, reason=refusal, action="delegate")
    record_event(
        EventType.RESPONSE_REFUSED,
        actor=actor,
        source=source,
        target=request,
        data={"reason": refusal, "action": "delegate", "to": new_email},
    )
    if refusal == "not_assignee":
        raise NotAllowed("Only the assignee can delegate this request.", code="not_assignee")
    raise NotAllowed("The request was reassigned meanwhile.", code="not_assignee")


def _reassign(
    request: HITLRequest,
    *,
    new_email: str,
    actor: str,
    source: str,
    step: str,
    data: dict[str, Any],
    guard: dict[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
) -> bool:
    """The one reassignment write, for managers and for escalation: a compare-and-set on `pending`
    (plus `guard`), the audit event, and the REASSIGNED announcement. False if the set lost."""
    previous = request.assigned_to_email
    new_email = new_email.strip().lower()
    won = HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING, **(guard or {})).update(
        assigned_to_email=new_email,
        assignment_step=step,
        assignment_version=F("assignment_version") + 1,
        updated_at=timezone.now(),
        **(updates or {}),
    )
    if not won:
        return False
    request.refresh_from_db()
    record_event(
        EventType.REQUEST_REASSIGNED,
        actor=actor,
        source=source,
        target=request,
        data={"from": previous, "to": new_email, **data},
    )
    announce(request, Event.REASSIGNED)
    return True
