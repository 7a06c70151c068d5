"""For self-hosters whose MTA pipes mail to a command (e.g. Postfix `pipe`); same processing as the
Anymail webhooks. Exit codes follow sysexits: 0 processed (accepted, refused, ignored, or too large:
recorded, and the assignee told to reply without attachments where we can tell who it is), 65
(EX_DATAERR) for a message whose structure cannot be processed (recorded; the MTA must not retry it),
75 (EX_TEMPFAIL) when our side failed, so the MTA queues the message and tries again."""

import sys
from typing import Any

from anymail.inbound import AnymailInboundMessage
from django.conf import settings
from django.core.management.base import BaseCommand

from hitl.inbound import limits
from hitl.inbound.email import process_inbound_email

EX_DATAERR = 65
EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = "Read one raw RFC 5322 message on stdin and process it as an email reply."

    def handle(self, *args: Any, **options: Any) -> None:
        limit = settings.HITL_INBOUND_MAX_BYTES
        raw = sys.stdin.buffer.read(limit + 1)
        try:
            if len(raw) > limit:
                detail = limits.record_oversized("mta", raw[: limits.SNIFF_BYTES], len(raw))
                self.stdout.write(f"refused too_large {detail}")
                return
            try:
                message = AnymailInboundMessage.parse_raw_mime_bytes(raw)
                outcome = process_inbound_email(message, via="mta")
            except limits.UNPROCESSABLE as exc:
                self.stderr.write("permanent failure: " + limits.record_unprocessable("mta", exc))
                sys.exit(EX_DATAERR)
        except Exception as exc:  # our fault: tell the MTA to retry later, never bounce to the sender
            self.stderr.write(f"temporary failure: {type(exc).__name__}: {exc}")
            sys.exit(EX_TEMPFAIL)
        self.stdout.write(f"{outcome.outcome} {outcome.reason} {outcome.request_id or ''}".strip())
