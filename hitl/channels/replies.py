"""What the server emails back to someone who answered by email (SPEC §4, §14): the confirmation that
their answer was recorded, and the error email that says why a reply was not used and what to do.

Both go through the notification outbox (`notification_outbox`) like every notification: a row with
the recipient and the thread in its payload, one task per row, a failed send recorded in the audit log
and tried again with the outbox's backoff, a worker lost mid-send tried again after its lease. An error
email about no request at all (an unknown sender, no token) has no request to hang a row on: it stays
a plain task (`hitl.tasks.send_reply_error`), rate-limited and best effort.
"""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db import transaction

from audit.models import EventType
from audit.services import record_event
from hitl.channels import notification_outbox
from hitl.channels.base import Channel, ChannelError
from hitl.lib import emails
from hitl.models import HITLRequest

CONFIRMATION = "reply_confirmation"
ERROR = "reply_error"
PATH = "hitl.channels.replies.ReplyChannel"


def queue(request: HITLRequest, event: str, to: str, **payload: Any) -> None:
    """Put a reply email in the outbox (committed at once, or with the caller's transaction) and queue
    its task after commit."""
    with transaction.atomic():
        ids = notification_outbox.stage(request, event, [PATH], payload={"to": to, **payload})
        notification_outbox.enqueue_after_commit(ids)


def confirmation(request: HITLRequest, to: str, in_reply_to: str) -> EmailMultiAlternatives | None:
    """'Your answer was recorded', threaded under the notification; None if there is no answer."""
    from hitl.channels.email import form_lines

    resolution = getattr(request, "resolution", None)
    if resolution is None:
        return None
    thread = emails.thread_id(request.pk)
    references = " ".join(x for x in (thread, in_reply_to) if x)
    return emails.build(
        "confirmation",
        {
            "request": request,
            "deployment": request.deployment,
            "result": resolution.result,
            "form_lines": form_lines(request, resolution.result.get("form")),
        },
        to=to,
        headers={"In-Reply-To": in_reply_to or thread, "References": references, "Auto-Submitted": "auto-replied"},
    )


def error(request: HITLRequest | None, to: str, context: dict[str, Any]) -> EmailMultiAlternatives:
    """Why a reply was not used and what to do (`hitl.inbound.email` writes the context)."""
    in_reply_to = str(context.get("in_reply_to") or "")
    headers = {"Auto-Submitted": "auto-replied"}
    if in_reply_to:
        headers.update({"In-Reply-To": in_reply_to, "References": in_reply_to})
    return emails.build("reply-error", {**context, "request": request}, to=to, headers=headers)


class ReplyChannel(Channel):
    """Sends the outbox's reply emails; never chosen by `announce` (its rows are queued by `queue`)."""

    name = "email"
    events = frozenset({CONFIRMATION, ERROR})

    def wants(self, request: HITLRequest, event: str) -> bool:
        return False

    def notify(self, request: HITLRequest, event: str) -> None:
        raise ChannelError("a reply email needs its recipient: it is sent from an outbox row", retryable=False)

    def notify_from_outbox(self, request: HITLRequest, event: str, payload: dict[str, Any]) -> None:
        to = str(payload.get("to") or "")
        if not to:
            raise ChannelError("the outbox row names no recipient", retryable=False)
        if event == CONFIRMATION:
            message = confirmation(request, to, str(payload.get("in_reply_to") or ""))
            if message is None:
                return  # nothing was recorded (cannot happen: the row is written after the answer)
        else:
            message = error(request, to, dict(payload.get("context") or {}))
        try:
            message.send()
        except Exception as exc:  # any backend/ESP failure: recorded, and the outbox tries again
            detail = f"{type(exc).__name__}: {exc}"[:1000]
            record_event(
                EventType.NOTIFICATION_FAILED,
                target=request,
                source="email",
                data={"to": to, "event": event, "error": detail},
            )
            failure = ChannelError(detail, retryable=True)
            failure.recorded = True
            raise failure from exc
        record_event(EventType.NOTIFICATION_SENT, target=request, source="email", data={"to": to, "event": event})
