"""One builder for every email: `<name>-subject.txt`, `<name>-body.txt`, `<name>-body.html` under
templates/emails/. Sending happens in tasks; this module only builds."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def build(
    name: str,
    context: dict[str, Any],
    *,
    to: str,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    text = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
        headers=headers or {},
    )
    message.attach_alternative(html, "text/html")
    return message


def thread_id(request_id: Any) -> str:
    """The Message-ID of a request's notification; replies and confirmations point back to it."""
    return f"<hitl-{request_id}@{settings.HITL_INBOUND_DOMAIN}>"
