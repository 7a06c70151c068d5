"""Bounces that arrive after the notification was sent (SPEC §4, §13): an ESP's tracking webhook or
a delivery report mailed back. Each is matched to the email it is about (`SentEmail`) and recorded
once where ops staff look: the request's notification error (and its count), the approver's seat,
the audit log. With several approvers it also says whether the policy can still be met by the
approvers who can be reached."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from hitl.channels.base import record_failure
from hitl.models import Approver, Decision, HITLRequest, Policy, SentEmail

logger = logging.getLogger(__name__)

# Anymail's normalized tracking event types that mean the message did not (and will not) arrive.
BOUNCE_EVENTS = frozenset({"bounced", "rejected", "failed"})


def record_bounce(
    *, recipient: str, reason: str, via: str, esp_message_id: str = "", message_id: str = "", reply_to: str = ""
) -> SentEmail | None:
    """Record that the notification named by `esp_message_id` (trusted: from an authenticated ESP
    webhook) or by `message_id` *and* `reply_to` (from a delivery report) bounced for `recipient`.
    None when it names no email of ours; a second report of the same bounce changes nothing."""
    sent = _find(recipient, esp_message_id=esp_message_id, message_id=message_id, reply_to=reply_to)
    if sent is None:
        logger.info("bounce via %s names no notification of ours (%s)", via, esp_message_id or message_id)
        return None
    reason = " ".join(reason.split())[:500] or "no reason given"
    with transaction.atomic():
        if not SentEmail.objects.filter(pk=sent.pk, bounced_at__isnull=True).update(
            bounced_at=timezone.now(), bounce=reason
        ):
            return sent  # reported before (ESPs retry their webhooks; servers send reports twice)
        request = HITLRequest.objects.get(pk=sent.request_id)
        detail = f"Bounced for {sent.to}: {reason}"
        data: dict[str, object] = {"to": sent.to, "bounce": True, "via": via}
        if request.has_pool and request.is_pending:
            Approver.objects.filter(request_id=request.pk, email=sent.to, active=True).update(notification_error=detail)
            short = policy_shortfall(request)
            if short:
                detail = f"{detail}. {short}"
                data["policy_at_risk"] = True
        record_failure(request, "email", sent.event, detail, **data)
    return sent


def policy_shortfall(request: HITLRequest) -> str:
    """Why the policy can no longer be met by approvers who decided or can still be reached, or ""."""
    seats = Approver.objects.filter(request_id=request.pk, active=True).count()
    decided = Decision.objects.filter(request_id=request.pk).count()
    reachable = Approver.objects.undecided(request.pk).filter(notification_error="").count()
    needed = (
        seats if request.policy == Policy.ALL else (request.required or 1) if request.policy == Policy.QUORUM else 1
    )
    if decided + reachable >= needed:
        return ""
    return (
        f"The policy ({request.policy}, {needed} decision(s) needed) cannot be met: {decided} decided and "
        f"{reachable} more can be reached. Replace the unreachable approver(s), or cancel the request."
    )


def _find(recipient: str, *, esp_message_id: str, message_id: str, reply_to: str) -> SentEmail | None:
    found = SentEmail.objects.all()
    if esp_message_id:
        found = found.filter(esp_message_id=esp_message_id)
    elif message_id and reply_to:
        found = found.filter(message_id=message_id, reply_to__iexact=_address(reply_to))
    else:
        return None
    if recipient:
        found = found.filter(to__iexact=recipient.strip())
    return found.order_by("-sent_at").first()


def _address(value: str) -> str:
    from email.utils import parseaddr

    return parseaddr(value)[1] or value.strip()
