"""Shared by the inbound email tests: a pending request assigned to REVIEWER and its Reply-To address."""

from __future__ import annotations

from django.core import mail

from tests.support.base import World

REVIEWER = "reviewer@example.com"


def pending_request(world: World, **payload: object) -> tuple[str, str]:
    """Create a request for REVIEWER; return its id and the Reply-To of its notification (outbox cleared)."""
    mail.outbox.clear()
    created = world.create(assign_to=REVIEWER, **payload)
    reply_to = mail.outbox[0].reply_to[0]
    mail.outbox.clear()
    return created["id"], reply_to
