"""Outbound webhooks as a channel (SPEC §6). Unlike push channels, webhooks keep an outbox: `stage`
writes one delivery per subscribed webhook inside the transaction that changed the request and
enqueues their delivery tasks after commit (see `hitl.webhooks`), so no separate notify task is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hitl.channels.base import Channel
from hitl.models import WebhookEvent

if TYPE_CHECKING:
    from hitl.models import HITLRequest


class WebhookChannel(Channel):
    name = "webhook"
    events = frozenset(WebhookEvent.values)

    def stage(self, request: HITLRequest, event: str) -> None:
        from hitl.channels import webhook_outbox

        if event in self.events:
            webhook_outbox.enqueue_deliveries(webhook_outbox.stage_deliveries(request, event))

    def wants(self, request: HITLRequest, event: str) -> bool:
        # stage() already enqueued one task per delivery; there is nothing left to notify.
        return False
