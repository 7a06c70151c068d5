"""What the two outboxes (webhook deliveries, notification deliveries) share: finding the rows whose
next try is due and that no queued task is waiting for, and marking them queued."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import Q

from hitl.lib.queue import enqueue
from hitl.models import DeliveryStatus

# A queued task is given this long to start its try before the ticker queues another (a lost enqueue).
QUEUED_FOR_SECONDS = 60


def queued_until(now: datetime) -> datetime:
    return now + timedelta(seconds=QUEUED_FOR_SECONDS)


def mark_due(model: type[models.Model], now: datetime, limit: int) -> list[int]:
    """Ids of up to `limit` pending rows of `model` whose next try is due and that no queued task is
    waiting for (a lost enqueue, a retry whose backoff passed, a try whose worker died), marked as
    queued for QUEUED_FOR_SECONDS: the caller enqueues each once even when the ticker runs every few
    seconds. Rows another pass is marking are skipped (SKIP LOCKED), not waited for."""
    manager: Any = model._default_manager
    waiting = Q(queued_until__isnull=True) | Q(queued_until__lte=now)
    due = manager.filter(waiting, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if not ids:
        return []
    with transaction.atomic():
        rows = manager.select_for_update(skip_locked=True).filter(waiting, pk__in=ids)
        marked = list(rows.values_list("pk", flat=True))
        manager.filter(pk__in=marked).update(queued_until=queued_until(now))
    return marked


def enqueue_after_commit(task: str, ids: list[int]) -> None:
    """After commit, one `task(id)` per row (a slow delivery never holds up another)."""
    if not ids:
        return

    def send() -> None:
        for pk in ids:
            enqueue(task, pk)

    transaction.on_commit(send)
