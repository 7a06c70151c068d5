"""Small presentation helpers for the reviewer pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from hitl import results

register = template.Library()

POSITIVE = {"approved", "approve", "accept", "accepted", "yes", "publish", "ok", "lgtm"}
NEGATIVE = {"rejected", "reject", "decline", "declined", "no", "deny", "denied"}


@register.filter
def option_label(option: str) -> str:
    """`needs_revision` → `Needs revision` (the value sent stays the option itself)."""
    text = str(option).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@register.filter
def option_class(option: str) -> str:
    key = str(option).strip().lower()
    if key in POSITIVE:
        return "btn-approve"
    if key in NEGATIVE:
        return "btn-reject"
    return "btn-option"


@register.filter
def answer_summary(result: dict[str, Any] | None) -> str:
    return results.answer_summary(result or {})


@register.filter
def ago(moment: datetime | None) -> str:
    """ "just now", "5 minutes ago", "3 hours ago" (one unit: the inbox is scanned, not read)."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


@register.filter
def elapsed_since(later: datetime | None, earlier: datetime | None) -> str:
    """`answered_at|elapsed_since:asked_at` → "1 hour, 30 minutes" (Django's `timesince` filter counts
    the other way round, from its value to its argument, and says "0 minutes" for every answer)."""
    if later is None or earlier is None:
        return ""
    if (later - earlier).total_seconds() < 60:
        return "less than a minute"
    return timesince(earlier, later, depth=2)


@register.simple_tag(takes_context=True)
def manages_something(context: dict[str, Any]) -> bool:
    """Whether the signed-in user manages a deployment (the analytics page is theirs)."""
    from accounts.lib.access import deployment_scope
    from accounts.models import Deployment

    user = context.get("user")
    if user is None or not user.is_authenticated:
        return False
    return Deployment.objects.filter(deployment_scope(user, "manage")).exists()


@register.filter
def form_value(value: Any) -> str:
    """A typed form's value as the resolution panel shows it (yes/no, lists joined)."""
    return results.shown_value(value)
