"""The one seam to django-q2: every task is enqueued here, by its dotted path (the contract between old
and new code: work queued by one release must run on the next)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _broker() -> Any:
    """One broker (one Redis connection pool) per process: django-q2 builds a new one per `async_task`
    otherwise, which cost more than the rest of creating a request (tests/bench/results/throughput.md)."""
    from django_q.brokers import get_broker

    return get_broker()


def enqueue(func: str, *args: object) -> None:
    from django_q.conf import Conf
    from django_q.tasks import async_task

    if Conf.SYNC:
        async_task(func, *args)
    else:
        async_task(func, *args, broker=_broker())


# django-q2's scheduler looks at its schedules every 30 s: a shorter delay is waited out by a worker.
SCHEDULER_TICK = 30.0


def enqueue_in(seconds: float, func: str, *args: object) -> None:
    """Run `func` once, about `seconds` from now: a task that waits first when that is shorter than the
    scheduler's tick (it holds a worker that long), else a django-q2 one-off schedule; inline in sync
    mode."""
    from datetime import timedelta

    from django.utils import timezone
    from django_q.conf import Conf
    from django_q.models import Schedule
    from django_q.tasks import schedule

    if Conf.SYNC:
        enqueue(func, *args)
        return
    if seconds < SCHEDULER_TICK:
        enqueue("hitl.lib.queue.run_after", seconds, func, *args)
        return
    schedule(func, *args, schedule_type=Schedule.ONCE, next_run=timezone.now() + timedelta(seconds=seconds), repeats=1)


def run_after(seconds: float, func: str, *args: object) -> None:
    """The task `enqueue_in` queues for a short delay: wait, then run `func` in this worker."""
    import time

    from django.utils.module_loading import import_string

    time.sleep(max(0.0, min(float(seconds), SCHEDULER_TICK)))
    import_string(func)(*args)
