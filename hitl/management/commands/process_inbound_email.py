"""For self-hosters whose MTA pipes mail to a command (e.g. Postfix `pipe`); same processing as the
Anymail webhooks. Exit codes follow sysexits: 0 processed (accepted, refused with an error email, or
ignored), 75 (EX_TEMPFAIL) when our side failed, so the MTA queues the message and tries again."""

import sys
from typing import Any

from anymail.inbound import AnymailInboundMessage
from django.core.management.base import BaseCommand

from hitl.inbound.email import process_inbound_email


class Command(BaseCommand):
    help = "Read one raw RFC 5322 message on stdin and process it as an email reply."

    def handle(self, *args: Any, **options: Any) -> None:
        raw = sys.stdin.buffer.read()
        try:
            message = AnymailInboundMessage.parse_raw_mime_bytes(raw)
            outcome = process_inbound_email(message, via="mta")
        except Exception as exc:  # our fault: tell the MTA to retry later, never bounce to the sender
            self.stderr.write(f"temporary failure: {type(exc).__name__}: {exc}")
            sys.exit(75)
        self.stdout.write(f"{outcome.outcome} {outcome.reason} {outcome.request_id or ''}".strip())
