"""The one periodic job (SPEC §5): every minute a django-q2 schedule runs `sweep()` (see hitl.schedules;
`manage.py hitl_sweep` runs one pass by hand).

It only *finds* due work through the indexed deadline columns (partial indexes on pending rows) and
hands each item to its service, whose compare-and-set makes it happen exactly once, however many
sweeps overlap (several `qcluster` processes, a slow pass, a manual run). Nothing is scheduled per
request, so a deadline survives restarts: it is a column, not a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.utils import timezone

from hitl import services, webhooks
from hitl.dispatch import enqueue
from hitl.errors import NotPending
from hitl.models import HITLRequest, Status

logger = logging.getLogger(__name__)

# Per kind of work and pass; whatever is left waits for the next minute.
BATCH = 500


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


def sweep(now: datetime | None = None) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()
    due = _pending().filter(due_at__lte=now).order_by("due_at").values_list("pk", flat=True)[:BATCH]
    report.expired = _each(list(due), lambda pk: services.expire_request(pk, now=now), "expire")

    late = _pending().filter(overdue=False, sla_due_at__lte=now).values_list("pk", flat=True)[:BATCH]
    report.overdue = _each(list(late), lambda pk: services.mark_overdue(pk, now=now), "overdue")

    remind = _pending().filter(reminder_due_at__lte=now).values_list("pk", flat=True)[:BATCH]
    report.reminded = _each(list(remind), lambda pk: services.remind_assignee(pk, now=now), "reminder")

    escalate = _pending().filter(escalation_due_at__lte=now).values_list("pk", flat=True)[:BATCH]
    report.escalated = _each(list(escalate), lambda pk: services.escalate_request(pk, now=now), "escalation")

    # Webhook retries whose backoff has passed, and attempts whose worker died (lease expired).
    for delivery_id in webhooks.due_deliveries(now, BATCH):
        enqueue("hitl.tasks.deliver_webhook", delivery_id)
        report.deliveries += 1
    if any(getattr(report, f.name) for f in fields(report)):
        logger.info("sweep: %s", report)
    return report
