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
from hitl.models import Approver, AssignmentStep, Decision, HITLRequest, Source, Status
from hitl.services import rollups
from hitl.services.resolve import _refuse


def reassign_request(
    request_id: Any, *, email: str, actor: str, note: str = "", source: str = Source.API, replace: str = ""
) -> HITLRequest:
    """Give a pending request to `email`. With several approvers (SPEC §13) it replaces one approver
    (`replace`, needed when the pool has more than one): that approver's capabilities end, the others'
    stay, and only the new approver is notified."""
    new_email = clean_email(email)
    if not new_email:
        raise InvalidInput({"email": ["Must be a valid email address."]})
    with transaction.atomic():
        request = HITLRequest.objects.select_for_update().get(pk=request_id)
        if request.is_pending and request.has_pool:
            return _replace_approver(request, old=replace, new=new_email, actor=actor, source=source, note=note)
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
        if request.is_pending and request.has_pool:
            # An approver hands their own seat over (SPEC §13); a stranger has no seat to hand over.
            if not Approver.objects.filter(request_id=request.pk, email=actor.lower(), active=True).exists():
                raise NotAllowed("Only an approver can delegate their decision.", code="not_an_approver")
            return _replace_approver(request, old=actor, new=new_email, actor=actor, source=source, note=note)
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


def _replace_approver(request: HITLRequest, *, old: str, new: str, actor: str, source: str, note: str) -> HITLRequest:
    """One approver's seat ends and another opens, under the request's row lock (the caller's)."""
    from hitl.services.decisions import AlreadyDecided

    seats = list(Approver.objects.filter(request_id=request.pk, active=True).order_by("position", "id"))
    old = (clean_email(old) or "") if old else (seats[0].email if len(seats) == 1 else "")
    if not old:
        raise InvalidInput(
            {"replace": ["Name the approver to replace (the pool has several)."]}, code="replace_required"
        )
    seat = next((s for s in seats if s.email == old), None)
    if seat is None:
        raise InvalidInput({"replace": [f"{old} is not one of this request's approvers."]}, code="not_an_approver")
    if Decision.objects.filter(request_id=request.pk, approver=old).exists():
        raise AlreadyDecided(f"{old} has already decided; a decision is never replaced.")
    if request.requested_by and new == request.requested_by.lower():
        raise InvalidInput({"email": ["The requester cannot approve their own request."]}, code="self_approval")
    if any(s.email == new for s in seats):
        raise InvalidInput({"email": [f"{new} is already an approver of this request."]}, code="already_an_approver")
    now = timezone.now()
    HITLRequest.objects.filter(pk=request.pk).update(
        assignment_version=F("assignment_version") + 1, assignment_step=AssignmentStep.REASSIGNED, updated_at=now
    )
    request.refresh_from_db()
    Approver.objects.filter(pk=seat.pk).update(active=False, replaced_by=new, ended_at=now)
    Approver.objects.create(
        request=request, email=new, position=seat.position, version=request.assignment_version, created_at=now
    )
    if request.assigned_to_email == old:
        HITLRequest.objects.filter(pk=request.pk).update(assigned_to_email=new)
        request.assigned_to_email = new
        rollups.count_reassigned(request, old)  # SPEC §19
    record_event(
        EventType.REQUEST_REASSIGNED,
        actor=actor,
        source=source,
        target=request,
        data={"from": old, "to": new, "note": note, "approver_replaced": True},
    )
    announce(request, Event.REASSIGNED)
    return request


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
    rollups.count_reassigned(request, previous)  # SPEC §19: its `created` moves to the new reviewer
    return True
