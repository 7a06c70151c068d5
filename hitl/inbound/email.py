"""Inbound email replies (SPEC §4): one function for every way mail reaches us — Anymail's inbound
webhooks for any ESP, `manage.py process_inbound_email` from an MTA pipe, and the dev mailbox.

Problems are either the sender's fault (a polite, rate-limited error email says why and what to do)
or ours (an exception: the ESP or MTA retries). Auto-replies and bounces are recorded and ignored,
never answered, so two robots can never mail each other forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr
from typing import Any

from django.db import IntegrityError, transaction

from audit.models import EventType
from audit.services import record_event
from hitl import services
from hitl.channels.email import answer_lines
from hitl.inbound.reply_text import html_to_text, strip_quotes
from hitl.lib.errors import InvalidAnswer, NotPending
from hitl.lib.queue import enqueue
from hitl.lib.reply_tokens import Verdict, check, find_token, redact, token_state
from hitl.models import HITLRequest, InboundEmail, Mode, Resolution, Source
from hitl.services.throttle import allow

logger = logging.getLogger(__name__)

ERROR_EMAILS_PER_HOUR = 5
MAX_BODY_CHARS = 200_000
_ROBOT_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply", "donotreply")


@dataclass
class Outcome:
    outcome: str  # InboundEmail.Outcome value
    reason: str
    request_id: Any = None
    detail: str = ""
    result: dict[str, Any] | None = field(default=None)


class SenderFault(Exception):
    def __init__(self, reason: str, why: str, what_to_do: str, *, request: HITLRequest | None = None, options=None):
        super().__init__(why)
        self.reason, self.why, self.what_to_do, self.request, self.options = reason, why, what_to_do, request, options
        self.audited = False  # True when respond_to_request already recorded the refusal


def _header_values(message: Message, *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        values.extend(str(v) for v in (message.get_all(name) or []))
    return values


def auto_reply_reason(message: Message, sender: str) -> str | None:
    """Why `message` is machine-sent (RFC 3834 and common practice), or None for a person."""
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return "auto_submitted"
    if str(message.get("Precedence", "")).strip().lower() in ("bulk", "junk", "list", "auto_reply"):
        return "precedence"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response", "X-Autoresponder"):
        if message.get(header) is not None:
            return "autoreply_header"
    if str(message.get("X-Auto-Response-Suppress", "")).strip().lower() in ("all", "oof"):
        pass  # set by Outlook on normal mail too; not a sign of an auto-reply by itself
    if message.get("Return-Path") is not None and str(message.get("Return-Path")).strip() in ("<>", ""):
        return "null_return_path"
    if getattr(message, "envelope_sender", None) == "":
        return "null_return_path"
    content_type = message.get_content_type()
    if content_type == "multipart/report":
        return "delivery_report"
    local = sender.split("@", 1)[0]
    if local in _ROBOT_LOCALPARTS:
        return "robot_sender"
    return None


def reply_body(message: Message) -> str:
    """The new text of the reply: plain part (or HTML turned to text), quotes and signatures removed,
    cut to what an answer may hold. Unknown charsets decode best-effort instead of failing."""
    text = _plain_part(message)
    if not (text or "").strip():
        text = html_to_text(_html_part(message) or "")
    # NUL can't be stored (PostgreSQL) and never carries meaning in a reply.
    return strip_quotes((text or "")[:MAX_BODY_CHARS].replace("\x00", ""))[: services.MAX_FEEDBACK]


def _plain_part(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            return _decode(part)
    return None


def _html_part(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "text/html" and not part.get_filename():
            return _decode(part)
    return None


def _decode(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name: best effort rather than a 500
        return payload.decode("utf-8", errors="replace")


def process_inbound_email(message: Message, *, via: str) -> Outcome:
    """Process one inbound email; returns what happened. Raises only for our own failures."""
    sender = parseaddr(str(message.get("From", "")).replace("\x00", ""))[1].strip().lower()
    message_id = str(message.get("Message-ID", "")).replace("\x00", "").strip()[:255] or None
    subject = str(message.get("Subject", "")).replace("\x00", "")[:255]

    if message_id and InboundEmail.objects.filter(message_id=message_id).exists():
        # An ESP retried its webhook: the first delivery was processed; do nothing twice.
        previous = InboundEmail.objects.get(message_id=message_id)
        return Outcome(previous.outcome, "duplicate", previous.request_id)

    if not sender or "@" not in sender:
        return _ignore(message_id, via, sender, subject, "no_sender")
    robot = auto_reply_reason(message, sender)
    if robot:
        return _ignore(message_id, via, sender, subject, robot)

    try:
        request, result = _answer(message, sender, via=via)
    except SenderFault as fault:
        _send_error(sender, fault, in_reply_to=message_id)
        detail = redact(fault.why)
        if not fault.audited:
            # respond_to_request audits its own refusals; everything refused before it, here.
            record_event(
                EventType.RESPONSE_REFUSED,
                actor=sender,
                source=Source.EMAIL,
                target=fault.request,
                target_type="hitlrequest",
                data={"reason": fault.reason, "detail": detail, "via": via},
            )
        _log(message_id, via, sender, subject, InboundEmail.Outcome.REFUSED, fault.reason, fault.request, detail)
        return Outcome(InboundEmail.Outcome.REFUSED, fault.reason, fault.request.pk if fault.request else None, detail)

    _log(message_id, via, sender, subject, InboundEmail.Outcome.ACCEPTED, "answered", request, "")
    enqueue("hitl.tasks.send_reply_confirmation", str(request.pk), sender, message_id or "")
    return Outcome(InboundEmail.Outcome.ACCEPTED, "answered", request.pk, result=result)


def _answer(message: Message, sender: str, *, via: str) -> tuple[HITLRequest, dict[str, Any]]:
    addresses = _header_values(message, "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
    envelope = getattr(message, "envelope_recipient", None)
    if envelope:
        addresses.append(str(envelope))
    token = find_token([", ".join(a for _, a in getaddresses([value])) or value for value in addresses])
    if token is None:
        raise SenderFault(
            "no_token",
            "We could not tell which review request your email answers.",
            "Please reply to the notification email itself (keep its reply address), or use the link in it.",
        )
    request = HITLRequest.objects.select_related("deployment").filter(pk=token.request_id).first()
    if request is None:
        raise SenderFault(
            "forged_token",
            "The reply address of your email is not valid.",
            "Please reply to the original notification email, or use the link in it.",
        )
    # The MAC binds the request's state: once it leaves pending, its tokens no longer verify as is.
    # Several approvers (SPEC §13): the token is the sender's own seat's (its email and version).
    capability = services.capability_for(request, sender)
    state = token_state(request.status, capability.version)
    verdict = check(token, sender=sender, authorised=capability.email, state=state)
    if verdict is Verdict.FORGED and not request.is_pending:
        # Tell "already answered" (a real token of ours, minted while pending) from a forgery.
        verdict = Verdict.VALID if _authentic_for_resolved(token, sender) else Verdict.FORGED
    if verdict is Verdict.FORGED:
        raise SenderFault(
            "forged_token",
            "The reply address of your email is not valid for this request.",
            "Please reply to the original notification email, or use the link in it.",
            request=request,
        )
    if verdict is Verdict.WRONG_SENDER or (verdict is Verdict.VALID and sender != capability.email):
        raise SenderFault(
            "wrong_sender",
            f"Your reply came from {sender}, but this request was sent to another address.",
            "Reply from the address the notification was sent to, or ask the person who assigned it to "
            "reassign it to you.",
            request=request,
        )
    if not request.is_pending:
        raise _already_answered(request)
    if verdict is Verdict.EXPIRED:
        raise _expired(request, sender)

    text = reply_body(message)
    answer = services.Answer(text=text) if request.mode == Mode.TEXT else services.Answer(feedback=text)
    try:
        resolution = services.respond_to_request(
            request.pk, answer, responder=sender, source=Source.EMAIL, assignment_version=capability.version
        )
    except services.DecisionRefused as exc:  # several approvers: already decided, replaced, ... (audited)
        fault = SenderFault(exc.code, exc.detail, "Nothing more is needed from you for this request.", request=request)
        fault.audited = True
        raise fault from None
    except NotPending:
        fault = _already_answered(request)
        fault.audited = True
        raise fault from None
    except InvalidAnswer as exc:
        fault = SenderFault(
            "invalid_answer",
            f"We could not read an answer from your reply: {exc.detail}",
            "Reply again with one of the valid answers on the first line.",
            request=request,
            options=answer_lines(request),
        )
        fault.audited = True
        raise fault from None
    return request, resolution.result


def _authentic_for_resolved(token: Any, sender: str) -> bool:
    return check(token, sender=sender, authorised=sender, state="pending") in (Verdict.VALID, Verdict.EXPIRED)


def _already_answered(request: HITLRequest) -> SenderFault:
    resolution = Resolution.objects.filter(request_id=request.pk).first()
    why = services.describe_resolution(resolution) if resolution else "This request is no longer waiting for an answer."
    return SenderFault("not_pending", why, "Nothing more is needed from you for this request.", request=request)


def _expired(request: HITLRequest, sender: str) -> SenderFault:
    resent = allow(f"expired-token-resend:{request.pk}:{sender}", limit=1, window_seconds=3600)
    if resent:
        services.resend_notification(request.pk, actor=sender, source=Source.EMAIL)
        what = "We have just sent you a fresh notification: reply to that one (or use its link)."
    else:
        what = "A fresh notification was sent to you within the last hour: reply to that one (or use its link)."
    return SenderFault(
        "expired_token", "The reply address of the email you answered has expired.", what, request=request
    )


def _send_error(sender: str, fault: SenderFault, *, in_reply_to: str | None) -> None:
    if not allow(f"reply-error:{sender}", limit=ERROR_EMAILS_PER_HOUR, window_seconds=3600):
        logger.info("error email to %s suppressed by the rate limit (%s)", sender, fault.reason)
        return
    enqueue(
        "hitl.tasks.send_reply_error",
        sender,
        {
            "why": fault.why,
            "what_to_do": fault.what_to_do,
            "options": fault.options or [],
            "request_id": str(fault.request.pk) if fault.request else None,
            "in_reply_to": in_reply_to or "",
        },
    )


def _ignore(message_id: str | None, via: str, sender: str, subject: str, reason: str) -> Outcome:
    record_event(
        EventType.EMAIL_IGNORED, actor=sender or "unknown", source=Source.EMAIL, data={"reason": reason, "via": via}
    )
    _log(message_id, via, sender, subject, InboundEmail.Outcome.IGNORED, reason, None, "")
    return Outcome(InboundEmail.Outcome.IGNORED, reason)


def _log(
    message_id: str | None,
    via: str,
    sender: str,
    subject: str,
    outcome: str,
    reason: str,
    request: HITLRequest | None,
    detail: str,
) -> None:
    try:
        with transaction.atomic():
            InboundEmail.objects.create(
                message_id=message_id,
                received_via=via[:40],
                sender=sender[:254],
                subject=redact(subject),
                request=request,
                outcome=outcome,
                reason=reason,
                detail=detail,
            )
    except IntegrityError:
        pass  # the same Message-ID raced in twice; the first record stands
