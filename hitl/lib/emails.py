"""One builder for every email: `<name>-subject.txt`, `<name>-body.txt`, `<name>-body.html` under
templates/emails/. Sending happens in tasks; this module only builds.

The subject and the text part are not HTML: they are rendered with autoescaping off, so "it's",
"A & B" and "->" arrive as written; only the HTML part is escaped. The text templates need no
`{% autoescape off %}` of their own, and forgetting one can no longer leak `&#x27;` into a subject."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context, engines
from django.template.backends.django import DjangoTemplates
from django.template.loader import render_to_string


def build(
    name: str,
    context: dict[str, Any],
    *,
    to: str,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    subject = " ".join(render_text(f"emails/{name}-subject.txt", context).split())
    text = render_text(f"emails/{name}-body.txt", context)
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


def render_text(template_name: str, context: dict[str, Any]) -> str:
    """Render a template whose output is plain text (a subject, a text part): no HTML escaping."""
    backend = engines["django"]
    assert isinstance(backend, DjangoTemplates)
    return backend.engine.get_template(template_name).render(Context(context, autoescape=False))


def new_message_id() -> str:
    """A fresh Message-ID on our inbound domain (follow-ups, so a bounce can name the one that bounced)."""
    from email.utils import make_msgid

    return make_msgid("hitl", domain=settings.HITL_INBOUND_DOMAIN)


def thread_id(request_id: Any, who: str = "") -> str:
    """The Message-ID of a request's notification; replies and confirmations point back to it. With
    several approvers (SPEC §13) each gets their own (`who`), since each email is a message of its own."""
    if who:
        import hashlib

        tag = hashlib.sha256(who.lower().encode()).hexdigest()[:10]
        return f"<hitl-{request_id}-{tag}@{settings.HITL_INBOUND_DOMAIN}>"
    return f"<hitl-{request_id}@{settings.HITL_INBOUND_DOMAIN}>"
