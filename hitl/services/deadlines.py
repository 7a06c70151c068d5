"""Reminder and escalation settings of a request: its routing rule's overrides, else its deployment's.

A rule's value wins when it is set, and 0 switches the step off for that rule's requests; a rule's
escalation chain wins when it is not empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hitl.lib.addresses import clean_email

if TYPE_CHECKING:
    from accounts.models import Deployment
    from hitl.models import HITLRequest, RoutingRule


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


@dataclass(frozen=True)
class TimeoutResolution:
    """How a request whose deadline passed resolves (SPEC §5): `default` with a default outcome →
    auto_responded with that outcome; otherwise (`fail`, `continue`, or no default outcome) → timed_out,
    and the flow decides from the result's metadata."""

    status: str
    event: str
    outcome: str | None
    metadata: dict[str, Any]


def timeout_resolution(request: HITLRequest) -> TimeoutResolution:
    from audit.models import EventType
    from hitl.models import OnTimeout, Status

    if request.on_timeout == OnTimeout.DEFAULT and request.default_outcome:
        return TimeoutResolution(Status.AUTO_RESPONDED, EventType.AUTO_RESPONDED, request.default_outcome, {})
    return TimeoutResolution(
        Status.TIMED_OUT, EventType.TIMED_OUT, None, {"timed_out": True, "on_timeout": request.on_timeout}
    )
