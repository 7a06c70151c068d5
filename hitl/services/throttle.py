"""Fixed-window rate limits kept in the database, so every web and worker process shares them."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone


def allow(key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one event for `key`; True while at most `limit` happened in the current window."""
    from hitl.models import ThrottleCounter

    now = timezone.now()
    window_floor = now - timedelta(seconds=window_seconds)
    with transaction.atomic():
        # A window that ended starts over; otherwise count up. Both as single UPDATEs (no lost counts).
        if ThrottleCounter.objects.filter(key=key, window_start__lte=window_floor).update(window_start=now, count=1):
            return True
        if ThrottleCounter.objects.filter(key=key).update(count=F("count") + 1):
            return ThrottleCounter.objects.get(key=key).count <= limit
        try:
            with transaction.atomic():
                ThrottleCounter.objects.create(key=key, window_start=now, count=1)
        except IntegrityError:
            # Another process created it first: count against theirs.
            ThrottleCounter.objects.filter(key=key).update(count=F("count") + 1)
            return ThrottleCounter.objects.get(key=key).count <= limit
    return True


def count(key: str, *, window_seconds: int) -> int:
    """How many events `key` has counted in its current window (0 once the window is over)."""
    from hitl.models import ThrottleCounter

    floor = timezone.now() - timedelta(seconds=window_seconds)
    row = ThrottleCounter.objects.filter(key=key, window_start__gt=floor).values_list("count", flat=True).first()
    return row or 0


def acquire(key: str, *, limit: int, ttl_seconds: int) -> bool:
    """Take one of `limit` concurrent slots for `key` (long-polls per API key); False when all are
    taken. Slots of a process that died mid-wait expire once the key has been idle for `ttl_seconds`."""
    from hitl.models import ThrottleCounter

    now = timezone.now()
    with transaction.atomic():
        ThrottleCounter.objects.filter(key=key, window_start__lte=now - timedelta(seconds=ttl_seconds)).update(count=0)
        if ThrottleCounter.objects.filter(key=key, count__lt=limit).update(count=F("count") + 1, window_start=now):
            return True
        if ThrottleCounter.objects.filter(key=key).exists():
            # Full, or created by a concurrent first taker between the update above and this read
            # (READ COMMITTED): the update again decides, against the row as it is now.
            return bool(
                ThrottleCounter.objects.filter(key=key, count__lt=limit).update(count=F("count") + 1, window_start=now)
            )
        try:
            with transaction.atomic():
                ThrottleCounter.objects.create(key=key, window_start=now, count=1)
        except IntegrityError:
            return bool(
                ThrottleCounter.objects.filter(key=key, count__lt=limit).update(count=F("count") + 1, window_start=now)
            )
    return True


def release(key: str) -> None:
    from hitl.models import ThrottleCounter

    ThrottleCounter.objects.filter(key=key, count__gt=0).update(count=F("count") - 1)
