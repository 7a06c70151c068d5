"""Delivery status notifications (RFC 3464): a bounce mailed back to us as `multipart/report;
report-type=delivery-status`. Reads which recipients failed and the headers of the message that
bounced (a `text/rfc822-headers` or `message/rfc822` part). Imports no app."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_string
from email.message import Message

MAX_PARTS = 50  # a report has three; anything much bigger is not one


@dataclass
class Report:
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recipient, status + diagnostic)
    original_message_id: str = ""
    original_reply_to: str = ""


def parse(message: Message) -> Report | None:
    """The failures a delivery report tells of, or None when `message` is not a delivery report."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    report = Report()
    for count, part in enumerate(message.walk()):
        if count > MAX_PARTS:
            break
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            report.failed.extend(_failures(part))
        elif kind in ("text/rfc822-headers", "message/rfc822") and not report.original_message_id:
            original = _original(part)
            if original is not None:
                report.original_message_id = str(original.get("Message-ID", "")).strip()[:255]
                report.original_reply_to = str(original.get("Reply-To", "")).strip()[:255]
    return report


def _original(part: Message) -> Message | None:
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        return payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], Message) else None
    text = part.get_payload(decode=True)
    if not isinstance(text, bytes):
        return None
    return message_from_string(text[:64_000].decode("utf-8", "replace"))


def _failures(part: Message) -> list[tuple[str, str]]:
    """(recipient, why) for each per-recipient block whose Action is `failed`. The blocks are header
    groups; Python parses them as the part's sub-messages or leaves them as text, by version."""
    payload = part.get_payload()
    blocks: list[Message] = []
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
    else:
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
        blocks = [message_from_string(chunk) for chunk in text[:64_000].split("\n\n") if chunk.strip()]
    failed = []
    for block in blocks[:MAX_PARTS]:
        if str(block.get("Action", "")).strip().lower() != "failed":
            continue
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
        why = " ".join(f"{block.get('Status', '')} {block.get('Diagnostic-Code', '')}".split())
        if address:
            failed.append((address[:254], why[:500]))
    return failed
