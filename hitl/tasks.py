"""django-q2 task functions: thin and idempotent (delivery is at-least-once)."""

from __future__ import annotations

import logging

from hitl import sweeper, webhooks
from hitl.channels.base import ChannelError
from hitl.dispatch import channel
from hitl.models import HITLRequest

logger = logging.getLogger(__name__)


def notify_channel(channel_path: str, request_id: str, event: str) -> None:
    request = HITLRequest.objects.select_related("deployment", "deployment__organization").filter(pk=request_id).first()
    if request is None:
        logger.warning("notify_channel: request %s is gone", request_id)
        return
    try:
        channel(channel_path).notify(request, event)
    except ChannelError as exc:
        # The channel has recorded and audited the failure itself; nothing more to retry here.
        logger.warning("channel %s failed for %s/%s: %s", channel_path, request_id, event, exc.detail)


def sweep() -> str:
    """The minute schedule's task (hitl.schedules): one pass of the deadline sweeper."""
    return str(sweeper.sweep())


def deliver_webhook(delivery_id: int) -> None:
    """One attempt of one webhook delivery, if it is due (a duplicate task finds nothing to do)."""
    webhooks.attempt_delivery(delivery_id)
