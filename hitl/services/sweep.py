"""The periodic pass (SPEC §5): `hitl worker` runs `tick()` every HITL_TICK_SECONDS (2 s by default) in
a thread beside the cluster, so a deadline, a reminder, an escalation or a webhook retry happens within
seconds of its time; the minute django-q2 schedule runs `sweep()`, the same pass plus housekeeping, as
the backstop for clusters started without the ticker (plain `qcluster`; see hitl.schedules).
`manage.py hitl_sweep` runs one pass by hand. One pass at a time finds due work across all workers
(a PostgreSQL advisory lock taken without waiting; SQLite has one writer anyway).

It only *finds* due work through the indexed deadline columns (partial indexes on pending rows) and
hands each item to its service, whose compare-and-set makes it happen exactly once, however many
sweeps overlap (several `qcluster` processes, a slow pass, a manual run). Nothing is scheduled per
request, so a deadline survives restarts: it is a column, not a job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from hitl.channels import notification_outbox, webhook_outbox
from hitl.lib.errors import NotPending
from hitl.lib.queue import enqueue
from hitl.models import HITLRequest, IdempotencyKey, Status
from hitl.services import deadlines, resolve

logger = logging.getLogger(__name__)

# Ids fetched per query; a pass keeps fetching until nothing is due or its time budget is spent.
BATCH = 500
# Timeouts resolved per transaction: big enough to save the per-request round trips, small enough
# that an answer racing the sweep waits a fraction of a second for the rows' locks.
EXPIRE_CHUNK = 100
# A pass stops fetching new work after this long (django-q2 kills a task after 90 s); whatever is
# left is still due and the next minute's pass carries on.
TIME_BUDGET = 50.0


@dataclass
class SweepReport:
    expired: int = 0
    overdue: int = 0
    reminded: int = 0
    escalated: int = 0
    deliveries: int = 0
    notifications: int = 0

    def __str__(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


def _pending() -> Any:
    return HITLRequest.objects.filter(status=Status.PENDING)


def _each(ids: Iterable[Any], action: Callable[[Any], object], what: str) -> int:
    """Apply `action` to every id; count the ones that did something. One failing item is logged and
    skipped, so it cannot hold up every other deadline."""
    done = 0
    for pk in ids:
        try:
            if action(pk):
                done += 1
        except NotPending:
            pass  # answered in the same instant: the answer won, the refusal is audited
        except Exception:
            logger.exception("sweeper: %s failed for %s", what, pk)
    return done


def _drain(query: Callable[[], Any], work: Callable[[list[Any]], int], deadline: float) -> int:
    """Fetch due ids a batch at a time and hand them to `work` until none are left, a batch changes
    nothing (what is left keeps failing, or is locked by an answer in progress) or the time is up."""
    done = 0
    while True:
        ids = list(query()[:BATCH])
        did = work(ids) if ids else 0
        done += did
        if len(ids) < BATCH or not did or time.monotonic() >= deadline:
            return done


def expire_due(ids: list[Any], now: datetime) -> int:
    """Resolve the due requests among `ids`, a chunk per transaction (`resolve.expire_due_requests`);
    a chunk that fails in any way rolls back and is retried one request at a time, so one bad request
    cannot hold up the others."""
    done = 0
    for start in range(0, len(ids), EXPIRE_CHUNK):
        chunk = ids[start : start + EXPIRE_CHUNK]
        try:
            done += resolve.expire_due_requests(chunk, now)
        except Exception:
            logger.warning("sweeper: expiring %d requests together failed; one by one", len(chunk), exc_info=True)
            done += _each(chunk, lambda pk: resolve.expire_request(pk, now=now), "expire")
    return done


# pg_try_advisory_lock key of the pass that finds due work ("hitl-tick" in ASCII).
_TICK_LOCK_KEY = 0x68_69_74_6C_74_69_63_6B


@contextmanager
def _one_pass_at_a_time() -> Iterator[bool]:
    """True when this process may run the due-work pass now; False when another one is at it."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_TICK_LOCK_KEY])
        got = bool(cursor.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_TICK_LOCK_KEY])


def tick(now: datetime | None = None) -> SweepReport | None:
    """The worker's few-second pass: due timeouts, SLA marks, reminders, escalations, and the webhook
    and notification outboxes' retries. None when another worker's pass is running (it does the same work)."""
    with _one_pass_at_a_time() as mine:
        if not mine:
            return None
        return _due_work(now or timezone.now())


def sweep(now: datetime | None = None) -> SweepReport:
    """The minute pass: the ticker's work (unless a ticker is at it right now), then housekeeping."""
    now = now or timezone.now()
    with _one_pass_at_a_time() as mine:
        report = _due_work(now) if mine else SweepReport()
    # Idempotency keys live 24 h (SPEC §15); a replay after that is a new call.
    purged, _ = IdempotencyKey.objects.expired(now).delete()
    if purged:
        logger.info("sweep: forgot %d idempotency keys older than 24 h", purged)
    forgotten = notification_outbox.forget_delivered(now)
    if forgotten:
        logger.info(
            "sweep: forgot %d delivered notifications (kept %d days)",
            forgotten,
            notification_outbox.KEEP_DELIVERED_DAYS,
        )
    return report


def _due_work(now: datetime) -> SweepReport:
    deadline = time.monotonic() + TIME_BUDGET
    report = SweepReport()

    def due() -> Any:
        return _pending().filter(due_at__lte=now).order_by("due_at").values_list("pk", flat=True)

    report.expired = _drain(due, lambda ids: expire_due(ids, now), deadline)

    def late() -> Any:
        return _pending().filter(overdue=False, sla_due_at__lte=now).values_list("pk", flat=True)

    report.overdue = _drain(
        late, lambda ids: _each(ids, lambda pk: deadlines.mark_overdue(pk, now=now), "overdue"), deadline
    )

    def remind() -> Any:
        return _pending().filter(reminder_due_at__lte=now).values_list("pk", flat=True)

    report.reminded = _drain(
        remind, lambda ids: _each(ids, lambda pk: deadlines.remind_assignee(pk, now=now), "reminder"), deadline
    )

    def escalate() -> Any:
        # A request reminded in this pass escalates in the next: its reminder task reads the assignee
        # when it runs, so escalating now would hand the original assignee's reminder to the next one.
        return _pending().filter(escalation_due_at__lte=now).exclude(reminder_sent_at=now).values_list("pk", flat=True)

    report.escalated = _drain(
        escalate, lambda ids: _each(ids, lambda pk: deadlines.escalate_request(pk, now=now), "escalation"), deadline
    )

    # Webhook retries whose backoff has passed, and attempts whose worker died (lease expired).
    for delivery_id in webhook_outbox.due_deliveries(now, BATCH):
        enqueue("hitl.tasks.deliver_webhook", delivery_id)
        report.deliveries += 1
    # Notifications the same way: retries, a task the broker lost, a try whose worker died.
    for notification_id in notification_outbox.due_notifications(now, BATCH):
        enqueue("hitl.tasks.deliver_notification", notification_id)
        report.notifications += 1
    if any(getattr(report, f.name) for f in fields(report)):
        logger.info("sweep: %s", report)
    return report
