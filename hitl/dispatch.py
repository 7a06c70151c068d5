"""After a request changes, each interested channel gets its own django-q2 task, scheduled on commit,
so nothing is sent for a rolled-back change and a slow channel never holds up the web request."""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils.module_loading import import_string

from hitl.channels import CHANNELS
from hitl.channels.base import Channel

if TYPE_CHECKING:
    from hitl.models import HITLRequest

logger = logging.getLogger(__name__)


@cache
def channel(path: str) -> Channel:
    return import_string(path)()


@cache
def _broker() -> Any:
    """One broker (one Redis connection pool) per process: django-q2 builds a new one per `async_task`
    otherwise, which cost more than the rest of creating a request (bench/results/throughput.md)."""
    from django_q.brokers import get_broker

    return get_broker()


def enqueue(func: str, *args: object) -> None:
    from django_q.conf import Conf
    from django_q.tasks import async_task

    if Conf.SYNC:
        async_task(func, *args)
    else:
        async_task(func, *args, broker=_broker())


def enqueue_in(seconds: float, func: str, *args: object) -> None:
    """Run `func` once, `seconds` from now (a django-q2 one-off schedule; inline in sync mode)."""
    from datetime import timedelta

    from django.utils import timezone
    from django_q.conf import Conf
    from django_q.models import Schedule
    from django_q.tasks import schedule

    if Conf.SYNC:
        enqueue(func, *args)
        return
    schedule(func, *args, schedule_type=Schedule.ONCE, next_run=timezone.now() + timedelta(seconds=seconds), repeats=1)


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
