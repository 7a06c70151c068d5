"""After a request changes, each interested channel gets its notification written to the outbox in the
same transaction (`notification_outbox`) and its own django-q2 task after commit, so nothing is sent for
a rolled-back change, nothing is lost with a worker, and a slow channel never holds up the web request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hitl.channels import CHANNELS, notification_outbox
from hitl.channels.base import channel

if TYPE_CHECKING:
    from hitl.models import HITLRequest

__all__ = ["announce", "channel"]


def announce(request: HITLRequest, event: str) -> None:
    """Let outbox channels stage their own work (webhooks), and stage a notification for every other
    channel that wants `event`: all in the current transaction; the tasks are queued after commit."""
    wanted = []
    for path in CHANNELS:
        handler = channel(path)
        handler.stage(request, event)
        if handler.wants(request, event):
            wanted.append(path)
    notification_outbox.enqueue_after_commit(notification_outbox.stage(request, event, wanted))
