"""The email channel (SPEC §4): notifications whose Reply-To carries a signed token, so the assignee
answers by replying, and whose magic link opens the review page without an account."""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.base import Channel, ChannelError, Event
from hitl.lib import emails
from hitl.lib.links import magic_link_url
from hitl.lib.markdown import MarkdownError, render_markdown
from hitl.lib.reply_tokens import reply_address
from hitl.models import Channel as ChannelChoice
from hitl.models import HITLRequest, Mode

logger = logging.getLogger(__name__)

# RFC 3834: we are an automatic sender; Exchange honours X-Auto-Response-Suppress (no OOF loops).
AUTOMATED_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}


def answer_lines(request: HITLRequest) -> list[str]:
    """How to answer by reply, one line per option (also used by the error emails)."""
    if request.mode == Mode.EMIT:
        return list(request.emit_options)
    if request.mode == Mode.APPROVAL:
        return ["approve", "reject"]
    if request.mode == Mode.CHOICES:
        return [f"{i}. {o['label']}" for i, o in enumerate(request.options, start=1)]
    return []


def request_context(request: HITLRequest) -> dict[str, Any]:
    try:
        content_html = render_markdown(request.content, inline_styles=True) if request.content else ""
    except MarkdownError as exc:
        # Never an email without the content it asks about: the notification fails, recorded.
        raise ChannelError(f"The request's content could not be rendered: {exc}") from exc
    return {
        "request": request,
        "deployment": request.deployment,
        "content_html": content_html,
        "answer_lines": answer_lines(request),
        "magic_link": magic_link_url(request),
        "first_option": (answer_lines(request) or ["approved"])[0].split(". ", 1)[-1],
    }


class EmailChannel(Channel):
    name = "email"
    events = frozenset({Event.NEW_REQUEST, Event.RESEND, Event.REMINDER, Event.REASSIGNED})

    def wants(self, request: HITLRequest, event: str) -> bool:
        return (
            event in self.events
            and request.channel == ChannelChoice.EMAIL
            and request.deployment.email_notifications
            and bool(request.assigned_to_email)
        )

    def notify(self, request: HITLRequest, event: str) -> None:
        if not request.is_pending:
            return  # answered before the task ran: nothing to ask any more
        to = request.assigned_to_email
        headers = dict(AUTOMATED_HEADERS)
        if event == Event.NEW_REQUEST:
            headers["Message-ID"] = emails.thread_id(request.pk)
        else:
            # Follow-ups join the original thread in the recipient's mail client.
            headers["In-Reply-To"] = headers["References"] = emails.thread_id(request.pk)
        try:
            context = {**request_context(request), "event": event}
        except ChannelError as exc:
            self._failed(request, to, event, exc.detail)
            raise
        message = emails.build(
            "notification",
            context,
            to=to,
            reply_to=reply_address(request.pk, to, request.assignment_version),
            headers=headers,
        )
        try:
            message.send()
        except Exception as exc:  # any backend/ESP failure: record it where ops staff look
            detail = f"{type(exc).__name__}: {exc}"[:1000]
            self._failed(request, to, event, detail)
            raise ChannelError(detail, retryable=True) from exc
        HITLRequest.objects.filter(pk=request.pk).update(notified_at=timezone.now(), notification_error="")
        record_event(EventType.NOTIFICATION_SENT, target=request, source="email", data={"to": to, "event": event})

    def _failed(self, request: HITLRequest, to: str, event: str, detail: str) -> None:
        """Record a failed notification where ops staff look: the request row and the audit log."""
        HITLRequest.objects.filter(pk=request.pk).update(notification_error=detail[:1000])
        record_event(
            EventType.NOTIFICATION_FAILED,
            target=request,
            source="email",
            data={"to": to, "event": event, "error": detail[:1000]},
        )
