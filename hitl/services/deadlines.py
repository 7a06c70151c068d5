"""Reminder and escalation settings of a request: its routing rule's overrides, else its deployment's.

A rule's value wins when it is set, and 0 switches the step off for that rule's requests; a rule's
escalation chain wins when it is not empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.lib.addresses import clean_email
from hitl.models import Approver, AssignmentStep, Decision, HITLRequest, Source, Status
from hitl.services.assign import _reassign

if TYPE_CHECKING:
    from accounts.models import Deployment
    from hitl.models import RoutingRule


@dataclass(frozen=True)
class FollowUp:
    reminder_after: timedelta | None
    escalation_after: timedelta | None
    chain: tuple[str, ...]

    def reminder_due(self, start: datetime) -> datetime | None:
        return start + self.reminder_after if self.reminder_after else None

    def escalation_due(self, start: datetime, level: int) -> datetime | None:
        """When the step after `level` completed steps is due, if the chain has one left."""
        if not self.escalation_after or level >= len(self.chain):
            return None
        return start + self.escalation_after


def _minutes(value: int | None) -> timedelta | None:
    return timedelta(minutes=value) if value else None


def follow_up(deployment: Deployment, rule: RoutingRule | None) -> FollowUp:
    reminder = deployment.reminder_after_minutes
    escalation = deployment.escalation_after_minutes
    chain = deployment.escalation_emails or []
    if rule is not None:
        if rule.reminder_after_minutes is not None:
            reminder = rule.reminder_after_minutes
        if rule.escalation_after_minutes is not None:
            escalation = rule.escalation_after_minutes
        if rule.escalation_emails:
            chain = rule.escalation_emails
    emails = tuple(email for email in (clean_email(str(item)) for item in chain if item) if email)
    return FollowUp(_minutes(reminder), _minutes(escalation), emails)


def next_in_chain(chain: tuple[str, ...], level: int, current: str) -> tuple[str | None, int]:
    """The next escalation email after `level` completed steps (skipping the current assignee, who
    gains nothing from being "escalated" to), and the level after taking it."""
    while level < len(chain):
        candidate = chain[level]
        level += 1
        if candidate != current.lower():
            return candidate, level
    return None, level


@transaction.atomic
def mark_overdue(request_id: Any, *, now: datetime | None = None) -> bool:
    """Flag a pending request whose SLA due time has passed (once)."""
    now = now or timezone.now()
    won = HITLRequest.objects.filter(pk=request_id, status=Status.PENDING, overdue=False, sla_due_at__lte=now).update(
        overdue=True, updated_at=now
    )
    if won:
        request = HITLRequest.objects.get(pk=request_id)
        record_event(
            EventType.REQUEST_OVERDUE,
            actor="system",
            source=Source.AUTO,
            target=request,
            data={"sla_due_at": request.sla_due_at, "assigned_to_email": request.assigned_to_email},
        )
    return bool(won)


@transaction.atomic
def remind_assignee(request_id: Any, *, now: datetime | None = None) -> bool:
    """Ask the channels to remind the assignee of a pending request (once: the due time is cleared
    by the same compare-and-set that claims the reminder)."""
    now = now or timezone.now()
    won = HITLRequest.objects.filter(pk=request_id, status=Status.PENDING, reminder_due_at__lte=now).update(
        reminder_due_at=None, reminder_sent_at=now, updated_at=now
    )
    if not won:
        return False
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    record_event(
        EventType.NOTIFICATION_SENT,
        actor="system",
        source=Source.AUTO,
        target=request,
        data={
            "action": "reminder_requested",
            "to": undecided(request) if request.has_pool else request.assigned_to_email,
        },
    )
    announce(request, Event.REMINDER)
    return True


@transaction.atomic
def escalate_request(request_id: Any, *, now: datetime | None = None) -> bool:
    """Take the next step of the escalation chain if it is due: reassign to the chain's next email
    (audited and announced like a manager's reassignment) and set when the step after it is due.
    Each step happens once: the compare-and-set includes the step's level and due time."""
    now = now or timezone.now()
    request = HITLRequest.objects.select_related("deployment", "assigned_rule").get(pk=request_id)
    if not request.is_pending or request.escalation_due_at is None or request.escalation_due_at > now:
        return False
    if request.reminder_due_at is not None and request.reminder_due_at <= now:
        return False  # the current assignee's reminder comes first (see sweep.escalate)
    config = follow_up(request.deployment, request.assigned_rule)
    email, level = next_in_chain(config.chain, request.escalation_level, request.assigned_to_email)
    guard = {"escalation_level": request.escalation_level, "escalation_due_at": request.escalation_due_at}
    updates = {"escalation_level": level, "escalation_due_at": config.escalation_due(now, level)}
    if request.has_pool:
        return _escalate_pool(request, now=now, level=level, guard=guard, updates=updates)
    if email is None:
        # The chain is used up (or was emptied meanwhile): stop escalating this request.
        HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING, **guard).update(
            escalation_level=level, escalation_due_at=None
        )
        return False
    return _reassign(
        request,
        new_email=email,
        actor="system",
        source=Source.AUTO,
        step=AssignmentStep.ESCALATED,
        data={"reason": "escalation", "level": level},
        guard=guard,
        updates=updates,
    )


def undecided(request: HITLRequest) -> list[str]:
    """The approvers of a pooled request who have not decided (SPEC §13): reminders go to them."""
    decided = set(Decision.objects.filter(request_id=request.pk).values_list("approver", flat=True))
    seats = Approver.objects.filter(request_id=request.pk, active=True).order_by("position", "id")
    return [seat.email for seat in seats if seat.email not in decided]


def _escalate_pool(
    request: HITLRequest, *, now: datetime, level: int, guard: dict[str, Any], updates: dict[str, Any]
) -> bool:
    """Escalating a pooled request (SPEC §13) goes to the approvers who have not decided: the step is
    taken once (the same compare-and-set as a reassignment's) and they are reminded; nobody's seat is
    taken away, so the decisions already made keep counting."""
    won = HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING, **guard).update(updated_at=now, **updates)
    if not won:
        return False
    record_event(
        EventType.NOTIFICATION_SENT,
        actor="system",
        source=Source.AUTO,
        target=request,
        data={"action": "escalation", "level": level, "to": undecided(request)},
    )
    announce(request, Event.REMINDER)
    return True
