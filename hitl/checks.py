"""System checks that stop a misconfigured production start (`manage.py check --deploy` and runserver)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=False)
def inbound_webhook_secret(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Anymail's inbound webhooks take email replies that answer requests: never without a secret."""
    if settings.DEBUG or settings.ANYMAIL.get("WEBHOOK_SECRET"):
        return []
    return [
        Error(
            "ANYMAIL_WEBHOOK_SECRET is not set: the inbound email webhook would accept anyone's POST.",
            hint='Set ANYMAIL_WEBHOOK_SECRET="user:long-random-password" and use it in your ESP\'s inbound URL.',
            id="hitl.E001",
        )
    ]
