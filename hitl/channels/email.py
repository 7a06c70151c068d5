"""The email channel (SPEC §4): notifications whose Reply-To carries a signed token, so the assignee
answers by replying, and whose magic link opens the review page without an account."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.base import Channel, ChannelError, Event, record_failure
from hitl.lib import emails, forms
from hitl.lib.links import magic_link_url
from hitl.lib.markdown import MarkdownError, render_markdown
from hitl.lib.reply_tokens import reply_address
from hitl.models import Approver, HITLRequest, Mode, SentEmail
from hitl.models import Channel as ChannelChoice

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
    if request.mode == Mode.FORM:
        return [
            f"{f.label}: <{f.hint()}>{' (required)' if f.required else ''}"
            for f in forms.form_fields(request.ordered_schema)
        ]
    return []


def form_lines(request: HITLRequest, values: dict[str, Any] | None) -> list[str]:
    """A form's values as `Label: value` lines (the confirmation email echoes them, SPEC §14)."""
    from hitl.results import shown_value

    labels = {f.name: f.label for f in forms.form_fields(request.ordered_schema)}
    return [f"{labels.get(name, name)}: {shown_value(value)}" for name, value in (values or {}).items()]


def form_prefill(request: HITLRequest) -> list[str]:
    """The pre-filled values, as lines a reply can keep or change."""
    return form_lines(request, forms.prefill(request.ordered_schema, request.form_initial or {}))


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
        "form_prefill": form_prefill(request) if request.mode == Mode.FORM else [],
    }


def handover(request: HITLRequest) -> dict[str, Any] | None:
    """Who handed the request to its current assignee, how, and their note: the reassignment's audit event
    (the one place the note is kept), if it was to this assignee."""
    from audit.models import AuditEvent

    event = (
        AuditEvent.objects.filter(
            event_type=EventType.REQUEST_REASSIGNED, target_type="hitlrequest", target_id=str(request.pk)
        )
        .order_by("-id")
        .first()
    )
    data = event.data if event is not None else {}
    if event is None or data.get("to") != request.assigned_to_email:
        return None
    how = "reassigned"
    if data.get("delegated"):
        how = "delegated"
    elif data.get("reason") == "escalation":
        how = "escalated"
    return {"by": event.actor, "how": how, "note": str(data.get("note") or "").strip(), "from": data.get("from", "")}


def remember_sent(request: HITLRequest, message: Any, to: str, event: str) -> SentEmail:
    """Keep what a later bounce will name: our Message-ID, the Reply-To, and the ESP's id (Anymail
    sets `anymail_status` on the message it sent; plain SMTP backends have none)."""
    status = getattr(message, "anymail_status", None)
    esp_id = ""
    if status is not None:
        recipient = (getattr(status, "recipients", None) or {}).get(to)
        found = getattr(recipient, "message_id", None)
        found = getattr(status, "message_id", None) if found is None else found
        esp_id = "" if found is None else str(found)
    return SentEmail.objects.create(
        request_id=request.pk,
        to=to,
        event=event,
        message_id=str(message.extra_headers.get("Message-ID", ""))[:255],
        reply_to=(message.reply_to[0] if message.reply_to else "")[:255],
        esp_message_id=esp_id[:255],
    )


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
        if request.has_pool:
            self._notify_pool(request, event)
            return
        to = request.assigned_to_email
        headers = dict(AUTOMATED_HEADERS)
        if event == Event.NEW_REQUEST:
            headers["Message-ID"] = emails.thread_id(request.pk)
        else:
            # Follow-ups join the original thread in the recipient's mail client.
            headers["In-Reply-To"] = headers["References"] = emails.thread_id(request.pk)
            headers["Message-ID"] = emails.new_message_id()
        try:
            context = {**request_context(request), "event": event}
        except ChannelError as exc:
            record_failure(request, "email", event, exc.detail, to=to)
            exc.recorded = True
            raise
        if event == Event.REASSIGNED:
            context["handover"] = handover(request)
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
            record_failure(request, "email", event, detail, to=to)
            error = ChannelError(detail, retryable=True)
            error.recorded = True
            raise error from exc
        with transaction.atomic():  # what was sent, recorded in one commit
            HITLRequest.objects.filter(pk=request.pk).update(notified_at=timezone.now(), notification_error="")
            remember_sent(request, message, to, event)
            record_event(EventType.NOTIFICATION_SENT, target=request, source="email", data={"to": to, "event": event})

    def _notify_pool(self, request: HITLRequest, event: str) -> None:
        """Several approvers (SPEC §13): each seat gets its own email, reply token and magic link, bound
        to that seat (its email and version). A new request or a reassignment mails the seats not yet
        notified (so a retried task does not mail twice); reminders and resends go to every approver
        who has not decided. A failure is recorded on its seat and the request; the others still go."""
        seats = Approver.objects.undecided(request.pk)
        if event in (Event.NEW_REQUEST, Event.REASSIGNED):
            seats = seats.filter(notified_at__isnull=True)
        elif event == Event.RESEND:
            seats = seats.filter(resend_requested_at__isnull=False)
        try:
            base = {**request_context(request), "event": event}
        except ChannelError as exc:
            record_failure(request, "email", event, exc.detail)
            exc.recorded = True
            raise
        pool_size = Approver.objects.filter(request_id=request.pk, active=True).count()
        failed: list[str] = []
        for seat in seats:
            context = {
                **base,
                "magic_link": magic_link_url(request, seat.email, version=seat.version),
                "pool": {"size": pool_size, "policy": request.policy, "required": request.required},
            }
            headers = dict(AUTOMATED_HEADERS)
            if event == Event.NEW_REQUEST:
                headers["Message-ID"] = emails.thread_id(request.pk, seat.email)
            else:
                headers["In-Reply-To"] = headers["References"] = emails.thread_id(request.pk, seat.email)
                headers["Message-ID"] = emails.new_message_id()
            message = emails.build(
                "notification",
                context,
                to=seat.email,
                reply_to=reply_address(request.pk, seat.email, seat.version),
                headers=headers,
            )
            try:
                message.send()
            except Exception as exc:  # a bounce at send time, an ESP failure: recorded on the seat
                detail = f"{type(exc).__name__}: {exc}"[:1000]
                Approver.objects.filter(pk=seat.pk).update(notification_error=detail)
                record_failure(request, "email", event, detail, to=seat.email)
                failed.append(detail)
                continue
            now = timezone.now()
            Approver.objects.filter(pk=seat.pk).update(notified_at=now, notification_error="", resend_requested_at=None)
            HITLRequest.objects.filter(pk=request.pk).update(notified_at=now)
            remember_sent(request, message, seat.email, event)
            record_event(
                EventType.NOTIFICATION_SENT, target=request, source="email", data={"to": seat.email, "event": event}
            )
        if failed:
            error = ChannelError(failed[0], retryable=True)
            error.recorded = True
            raise error
