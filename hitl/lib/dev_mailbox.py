"""Development mailbox: an email backend that keeps every sent message as an .eml file, and helpers
for the dev-only pages that show them and answer them "as the recipient" (see hitl/dev_views.py)."""

from __future__ import annotations

import re
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}\.eml$")


def mailbox_dir() -> Path:
    return Path(settings.EMAIL_FILE_PATH)


class DevMailboxBackend(BaseEmailBackend):
    """Writes each message to EMAIL_FILE_PATH/<time>-<id>.eml and prints a one-line summary."""

    def send_messages(self, email_messages: Any) -> int:
        directory = mailbox_dir()
        directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            name = f"{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml"
            (directory / name).write_bytes(message.message().as_bytes())
            print(f"[dev mailbox] to {', '.join(message.to)}: {message.subject}  ->  /dev/mailbox/{name}/")  # noqa: T201
        return len(email_messages)


def list_messages(limit: int = 200) -> list[dict[str, str]]:
    directory = mailbox_dir()
    if not directory.exists():
        return []
    entries = []
    for path in sorted(directory.glob("*.eml"), reverse=True)[:limit]:
        parsed = load(path.name)
        if parsed is not None:
            entries.append(
                {"name": path.name, "to": str(parsed["To"]), "subject": str(parsed["Subject"]), "date": path.name[:15]}
            )
    return entries


def load(name: str) -> EmailMessage | None:
    """The stored message called `name` (validated: no path tricks), or None."""
    if not _NAME.match(name):
        return None
    path = mailbox_dir() / name
    if not path.is_file():
        return None
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    return part.get_content() if part is not None else ""


def build_reply(original: EmailMessage, body: str) -> EmailMessage:
    """The reply a mail client would send: from the recipient, to the Reply-To, original quoted below."""
    sender = parseaddr(str(original["To"]))[1]
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(original.get("Reply-To") or original["From"])
    reply["Subject"] = f"Re: {original['Subject']}"
    reply["Message-ID"] = make_msgid(domain="dev-mailbox.localhost")
    if original.get("Message-ID"):
        reply["In-Reply-To"] = reply["References"] = str(original["Message-ID"])
    quoted = "\n".join(f"> {line}" for line in text_of(original).splitlines())
    reply.set_content(
        f"{body.rstrip()}\n\nOn {original.get('Date', 'an earlier day')}, {original['From']} wrote:\n{quoted}\n"
    )
    return reply
