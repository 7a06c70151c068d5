"""After a request changes, each interested channel gets its own django-q2 task, scheduled on commit,
so nothing is sent for a rolled-back change and a slow channel never holds up the web request."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.module_loading import import_string

from hitl.channels import CHANNELS
from hitl.channels.base import Channel
from hitl.lib.queue import enqueue

if TYPE_CHECKING:
    from hitl.models import HITLRequest


@cache
def channel(path: str) -> Channel:
    return import_string(path)()


def announce(request: HITLRequest, event: str) -> None:
    """Let outbox channels stage their work in the current transaction, then schedule
    `hitl.tasks.notify_channel` for every channel that wants `event`, after commit."""
    request_id = str(request.pk)
    for path in CHANNELS:
        channel(path).stage(request, event)

    def schedule() -> None:
        for path in CHANNELS:
            if channel(path).wants(request, event):
                enqueue("hitl.tasks.notify_channel", path, request_id, event)

    transaction.on_commit(schedule)
