"""The one periodic job (SPEC §5): every minute a django-q2 schedule runs `sweep()` (see hitl.schedules;
`manage.py hitl_sweep` runs one pass by hand).

It only *finds* due work through the indexed deadline columns (partial indexes on pending rows) and
hands each item to its service, whose compare-and-set makes it happen exactly once, however many
sweeps overlap (several `qcluster` processes, a slow pass, a manual run). Nothing is scheduled per
request, so a deadline survives restarts: it is a column, not a job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import record_events
from hitl import services
from hitl.channels import webhook_outbox
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.lib.errors import NotPending
from hitl.lib.queue import enqueue
from hitl.models import HITLRequest, Resolution, Source, Status
from hitl.results import build_result
from hitl.services.deadlines import timeout_resolution

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
    """Resolve the due requests among `ids` by their on-timeout rule, a chunk per transaction; return
    how many this call resolved.

    The same resolution as `services.expire_request` (same result, Resolution row, audit event and
    announcement per request), with the round trips shared: the chunk's pending rows are locked (rows
    an answer is writing are skipped: the answer wins, or the next batch finds them), then one
    compare-and-set per status moves them all and must move every one, and the Resolution rows go in
    one insert (their primary key is the request: a second one is refused by the database). A chunk
    that fails in any way rolls back and is retried one request at a time, so one bad request cannot
    hold up the others.
    """
    done = 0
    for start in range(0, len(ids), EXPIRE_CHUNK):
        chunk = ids[start : start + EXPIRE_CHUNK]
        try:
            done += _expire_chunk(chunk, now)
        except Exception:
            logger.warning("sweeper: expiring %d requests together failed; one by one", len(chunk), exc_info=True)
            done += _each(chunk, lambda pk: services.expire_request(pk, now=now), "expire")
    return done


class _LostRace(Exception):
    pass


@transaction.atomic
def _expire_chunk(ids: list[Any], now: datetime) -> int:
    requests = list(
        HITLRequest.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("deployment")
        .filter(pk__in=ids, status=Status.PENDING, due_at__lte=now)
        .order_by("pk")  # one lock order for every sweep
    )
    if not requests:
        return 0
    plans = [(request, timeout_resolution(request)) for request in requests]
    for status in {how.status for _, how in plans}:
        group = [request.pk for request, how in plans if how.status == status]
        # Compare-and-set, as in services._resolve; under the row locks it must win every row.
        won = HITLRequest.objects.filter(pk__in=group, status=Status.PENDING).update(
            status=status, resolved_at=now, updated_at=now
        )
        if won != len(group):
            raise _LostRace(f"{won} of {len(group)}")
    responded_at = now.isoformat().replace("+00:00", "Z")
    Resolution.objects.bulk_create(
        Resolution(
            request=request,
            status=how.status,
            outcome=how.outcome,
            source=Source.AUTO,
            responder="system",
            result=build_result(
                request,
                outcome=how.outcome,
                feedback="",
                source=Source.AUTO,
                responder="system",
                responded_at=responded_at,
                extra_metadata=how.metadata,
            ),
            answered_within_sla=(now <= request.sla_due_at) if request.sla_due_at else None,
            created_at=now,
        )
        for request, how in plans
    )
    record_events(
        [
            {
                "event_type": how.event,
                "actor": "system",
                "source": Source.AUTO,
                "target": request,
                "data": {"status": how.status, "outcome": how.outcome, "responder": "system"},
            }
            for request, how in plans
        ]
    )
    for request, how in plans:
        announce(request, Event.RESOLVED_BY_STATUS[how.status])
    for request, how in plans:
        request.status, request.resolved_at = how.status, now
    return len(plans)


def sweep(now: datetime | None = None) -> SweepReport:
    now = now or timezone.now()
    deadline = time.monotonic() + TIME_BUDGET
    report = SweepReport()

    def due() -> Any:
        return _pending().filter(due_at__lte=now).order_by("due_at").values_list("pk", flat=True)

    report.expired = _drain(due, lambda ids: expire_due(ids, now), deadline)

    def late() -> Any:
        return _pending().filter(overdue=False, sla_due_at__lte=now).values_list("pk", flat=True)

    report.overdue = _drain(
        late, lambda ids: _each(ids, lambda pk: services.mark_overdue(pk, now=now), "overdue"), deadline
    )

    def remind() -> Any:
        return _pending().filter(reminder_due_at__lte=now).values_list("pk", flat=True)

    report.reminded = _drain(
        remind, lambda ids: _each(ids, lambda pk: services.remind_assignee(pk, now=now), "reminder"), deadline
    )

    def escalate() -> Any:
        return _pending().filter(escalation_due_at__lte=now).values_list("pk", flat=True)

    report.escalated = _drain(
        escalate, lambda ids: _each(ids, lambda pk: services.escalate_request(pk, now=now), "escalation"), deadline
    )

    # Webhook retries whose backoff has passed, and attempts whose worker died (lease expired).
    for delivery_id in webhook_outbox.due_deliveries(now, BATCH):
        enqueue("hitl.tasks.deliver_webhook", delivery_id)
        report.deliveries += 1
    if any(getattr(report, f.name) for f in fields(report)):
        logger.info("sweep: %s", report)
    return report
