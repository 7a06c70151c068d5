"""Notifications kept in an outbox, as webhooks are (SPEC §17): nothing a channel should send is lost
with a worker, a broker or a failed try.

1. `stage` writes one NotificationDelivery per channel that wants the event, inside the transaction
   that changed the request, and `enqueue_after_commit` queues `hitl.tasks.deliver_notification`;
2. `deliver` claims the row with a compare-and-set that also leases it (pushes `next_attempt_at` past
   django-q2's time limit for a task), calls the channel's `notify`, and records the outcome: delivered,
   or a failure with the next try after NOTIFY_FAILURE_BACKOFF, or given up after the last;
3. the worker's ticker (`hitl.services.sweep.tick`) queues whatever is due: retries whose backoff has
   passed, a queued task the broker lost, a try whose worker died (its lease ran out).

At least once: a worker killed after the channel sent and before the outcome was written sends again.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from hitl.channels import outbox
from hitl.channels.base import ChannelError, channel, record_failure
from hitl.models import DeliveryStatus, HITLRequest, NotificationDelivery

logger = logging.getLogger(__name__)

# A notification that fails (the SMTP server refuses, the ESP or the Bot API answers an error, the
# channel raises) is tried again after these pauses: 6 tries over about 1 h 50 min (SPEC §17: at least
# 5 over at least an hour), each failure on the request and in the audit log.
NOTIFY_FAILURE_BACKOFF = (60, 300, 900, 1800, 3600)
# Past django-q2's time limit a task is killed: a try claimed longer ago than that has no worker left.
LEASE_MARGIN_SECONDS = 10
ABANDONED = "no outcome: the worker stopped or lost the database during this try (it may have been sent)"


def lease_seconds() -> int:
    timeout: Any = settings.Q_CLUSTER.get("timeout") or 90
    return int(timeout) + LEASE_MARGIN_SECONDS


def channel_name(path: str) -> str:
    """The channel's name for the request and the audit log (`email`, `telegram` …), at most 20 chars."""
    try:
        return (channel(path).name or path.rsplit(".", 1)[-1])[:20]
    except Exception:  # an unknown path is the failure being recorded: name it as given
        return path.rsplit(".", 1)[-1][:20]


def stage(request: HITLRequest, event: str, paths: list[str], payload: dict[str, Any] | None = None) -> list[int]:
    """One row per channel path, in the caller's transaction (one INSERT); their ids. `payload` is what
    the channel needs beyond the request (`Channel.notify_from_outbox`)."""
    if not paths:
        return []
    now = timezone.now()
    rows = NotificationDelivery.objects.bulk_create(
        [
            NotificationDelivery(
                request_id=request.pk,
                channel=path,
                event=event,
                next_attempt_at=now,
                queued_until=outbox.queued_until(now),  # its first task goes on the queue after commit
                created_at=now,
                payload=payload or {},
            )
            for path in paths
        ]
    )
    return [row.pk for row in rows]


def enqueue_after_commit(ids: list[int]) -> None:
    """After commit, one task per row (a slow channel never holds up another)."""
    outbox.enqueue_after_commit("hitl.tasks.deliver_notification", ids)


def deliver(delivery_id: int) -> str:
    """Make the next try of a due notification; what happened ("delivered", "retry", "failed", or
    "not due" when it is not due, another task has it or it is finished). Idempotent: a second task for
    the same row loses the claim. A database outage propagates, and the lease brings the row back."""
    due = _claim(delivery_id, timezone.now())
    if due is None:
        return "not due"  # not pending, not due yet, or another task's claim (its lease) won
    number = due["attempt_count"]
    ours = NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, attempt_count=number)
    path, event = due["channel"], due["event"]
    # get(), not first(): no ORDER BY for one row by its key; the row cascades with the request.
    request = HITLRequest.objects.select_related("deployment").get(pk=due["request_id"])
    failures = due["failures"]
    unreported = number - 1 - failures
    if unreported > 0:
        # Tries that never recorded an outcome count as failed ones, so a notification that keeps
        # killing its worker cannot loop forever.
        record_failure(request, channel_name(path), event, ABANDONED)
        failures += unreported
        if failures > len(NOTIFY_FAILURE_BACKOFF):
            return _failed(ours, path, event, failures, ABANDONED)
    try:
        handler: Any = channel(path)
        if hasattr(handler, "notify_from_outbox"):
            handler.notify_from_outbox(request, event, due["payload"])
        else:  # a channel of its own (a dotted path in settings) that does not derive from Channel
            handler.notify(request, event)
    except (OperationalError, InterfaceError):
        connection.close()  # the next task opens a fresh connection; this row's lease brings it back
        raise
    except Exception as exc:
        detail = (exc.detail if isinstance(exc, ChannelError) else f"{type(exc).__name__}: {exc}")[:1000]
        if not getattr(exc, "recorded", False):
            # A channel that recorded its own failure (with its address) says so; the rest is recorded here.
            record_failure(request, channel_name(path), event, detail)
        return _failed(ours, path, event, failures + 1, detail)
    ours.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None, failures=failures)
    return "delivered"


def _claim(delivery_id: int, now: Any) -> dict[str, Any] | None:
    """Claim a due row and lease it, in one statement: `attempt_count` moves on and `next_attempt_at`
    moves past django-q2's time limit (the lease), so a second claimant's WHERE no longer matches and the
    ticker leaves the row alone until the lease runs out. The row as claimed, or None."""
    table = NotificationDelivery._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET attempt_count = attempt_count + 1, next_attempt_at = %s, queued_until = NULL"  # noqa: S608 - our table name
            " WHERE id = %s AND status = %s AND next_attempt_at <= %s"
            " RETURNING attempt_count, failures, channel, event, request_id, payload",
            [adapt(now + timedelta(seconds=lease_seconds())), delivery_id, DeliveryStatus.PENDING, adapt(now)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    claimed = dict(zip(("attempt_count", "failures", "channel", "event", "request_id", "payload"), row, strict=True))
    payload = claimed["payload"]  # JSON text (both databases, as Django reads it) or already decoded
    claimed["payload"] = json.loads(payload) if isinstance(payload, str | bytes) else (payload or {})
    return claimed


def _failed(ours: Any, path: str, event: str, failures: int, detail: str) -> str:
    if failures > len(NOTIFY_FAILURE_BACKOFF):
        ours.update(status=DeliveryStatus.FAILED, failures=failures, next_attempt_at=None, last_error=detail)
        logger.error("notification %s %s failed %s times, giving up: %s", path, event, failures, detail)
        return "failed"
    delay = NOTIFY_FAILURE_BACKOFF[failures - 1]
    # Queued when due by the worker's ticker: no schedule row, no task holding a worker while it waits.
    ours.update(failures=failures, next_attempt_at=timezone.now() + timedelta(seconds=delay), last_error=detail)
    logger.warning("notification %s %s failed (%s); again in %s s", path, event, detail, delay)
    return "retry"


def due_notifications(now: Any, limit: int) -> list[int]:
    """Pending notifications due for a try that no queued task waits for, marked queued."""
    return outbox.mark_due(NotificationDelivery, now, limit)


# Delivered rows are kept this long (the admin's list), then the minute sweep forgets them; the audit
# log keeps every notification for good.
KEEP_DELIVERED_DAYS = 30


def forget_delivered(now: Any, limit: int = 5000) -> int:
    cutoff = now - timedelta(days=KEEP_DELIVERED_DAYS)
    old = NotificationDelivery.objects.filter(status=DeliveryStatus.DELIVERED, delivered_at__lt=cutoff)
    ids = list(old.values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    return NotificationDelivery.objects.filter(pk__in=ids).delete()[0]
