"""Replies we cannot take as they are (issue 14): too big to read, or built so that no parser can walk
them (MIME nested thousands deep). Neither is dropped silently, and neither makes the ESP retry forever:
each is recorded (the admin's inbound email list, the audit log), answered with 200 so the ESP stops,
and, for a reply too big to read, the assignee is told to send it again without attachments, when the
part we did read shows a reply token of ours that verifies for a sender it names."""

from __future__ import annotations

import binascii
import email.errors
import logging
import re

from anymail.utils import get_anymail_setting, get_request_basic_auth
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare

from audit.models import EventType
from audit.services import record_event
from hitl.inbound.email import SenderFault, _send_error
from hitl.lib.reply_tokens import Verdict, check, find_token, redact, token_state
from hitl.models import HITLRequest, InboundEmail, Source

logger = logging.getLogger(__name__)

INBOUND_PATH = re.compile(r"^/anymail/[^/]+/inbound")
SNIFF_BYTES = 256 * 1024  # headers (and a JSON payload's addresses) come first
_EMAIL = re.compile(rb"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,24}")

# What a message that no parser can walk raises: our own failures (the database) are not among them,
# so those still answer 5xx and the ESP retries. (ValueError covers UnicodeError and the header checks
# of the message classes: "Header values may not contain linefeed".)
UNPROCESSABLE = (RecursionError, email.errors.MessageError, binascii.Error, LookupError, ValueError)


def is_inbound(request: HttpRequest) -> bool:
    return bool(INBOUND_PATH.match(request.path))


def authenticated(request: HttpRequest) -> bool:
    """Anymail's shared basic auth (ANYMAIL_WEBHOOK_SECRET), checked before we record anything."""
    allowed = get_anymail_setting("webhook_secret", default=[])
    if isinstance(allowed, str):
        allowed = [allowed] if allowed else []
    if not allowed:
        return bool(settings.DEBUG)
    given = get_request_basic_auth(request)
    return any(constant_time_compare(given, secret) for secret in allowed)


def refuse_oversized(request: HttpRequest, length: int) -> HttpResponse:
    detail = f"The email is {length:,} bytes; replies are read up to {settings.HITL_INBOUND_MAX_BYTES:,} bytes."
    if not authenticated(request):
        return JsonResponse({"detail": detail, "code": "too_large"}, status=413)
    record_oversized(_via(request), request.read(SNIFF_BYTES), length)
    return JsonResponse({"detail": detail, "code": "too_large"}, status=200)  # 200: the ESP stops retrying


def refuse_unprocessable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The ESP's post was fine; the message inside it cannot be walked. Record it, stop the retries."""
    detail = record_unprocessable(_via(request), exc)
    return JsonResponse({"detail": detail, "code": "unprocessable"}, status=200)


def record_unprocessable(via: str, exc: BaseException) -> str:
    """Recorded and audited as a permanent failure (webhooks and the MTA pipe); returns the detail."""
    detail = f"The message's structure cannot be processed ({type(exc).__name__}); it was not read."
    record_event(
        EventType.EMAIL_IGNORED,
        actor="unknown sender",
        source=Source.EMAIL,
        data={"reason": "unprocessable", "detail": detail, "via": via},
    )
    _record(via, "", None, "unprocessable", detail)
    logger.warning("inbound email refused: %s", detail)
    return detail


def record_oversized(via: str, head: bytes, length: int) -> str:
    """A message over the limit: recorded, audited, and the assignee told where `head` (the start of
    the body) shows who it is; returns the detail."""
    limit = settings.HITL_INBOUND_MAX_BYTES
    detail = f"The email is {length:,} bytes or more; replies are read up to {limit:,} bytes."
    request_obj, sender = _sniff(head)
    if request_obj is not None and sender:
        _send_error(
            sender,
            SenderFault(
                "too_large",
                f"Your reply was too large for us to read (the limit is {limit // (1024 * 1024)} MB).",
                "Reply again without attachments: only the text of your reply is needed.",
                request=request_obj,
            ),
            in_reply_to=None,
        )
        detail += " The sender was told to reply again without attachments."
    record_event(
        EventType.RESPONSE_REFUSED,
        actor=sender or "unknown sender",
        source=Source.EMAIL,
        target=request_obj,
        target_type="hitlrequest",
        data={"reason": "too_large", "bytes": length, "via": via},
    )
    _record(via, sender, request_obj, "too_large", detail)
    logger.warning("inbound email refused: %s", detail)
    return detail


def _via(request: HttpRequest) -> str:
    return f"anymail:{request.path.split('/')[2]}"


def _sniff(head: bytes) -> tuple[HITLRequest | None, str]:
    """The pending request and its assignee, when the start of the body holds a reply token of ours
    that verifies for an address it also names. Anyone else gets nothing (no backscatter)."""
    addresses = [m.decode("ascii", "replace").lower() for m in _EMAIL.findall(head)][:200]
    token = find_token(addresses)
    if token is None:
        return None, ""
    request = HITLRequest.objects.filter(pk=token.request_id).first()
    if request is None or not request.is_pending:
        return request, ""
    state = token_state(request.status, request.assignment_version)
    assignee = request.assigned_to_email
    if assignee in addresses and check(token, sender=assignee, authorised=assignee, state=state) is Verdict.VALID:
        return request, assignee
    return request, ""


def _record(via: str, sender: str, request: HITLRequest | None, reason: str, detail: str) -> None:
    InboundEmail.objects.create(
        message_id=None,
        received_via=via[:40],
        sender=sender[:254],
        subject="",
        request=request,
        outcome=InboundEmail.Outcome.REFUSED,
        reason=reason,
        detail=redact(detail),
    )
