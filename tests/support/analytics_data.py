"""A fixed dataset with hand-computed answers for the analytics tests.

Period: Monday 2026-01-05 to Sunday 2026-01-11 (UTC); "now" is 2026-01-12 09:00. Rows are inserted
directly with exact timestamps (the services stamp `now`). Human response times in the period, in
seconds, sorted: 45, 300, 600, 900, 1200, 5400, 6600, 7200 (n = 8):

- mean 22245 / 8 = 2780.625
- median: position 1 + 0.5·7 = 4.5 → (900 + 1200) / 2 = 1050
- p90: position 1 + 0.9·7 = 7.3 → 6600 + 0.3·(7200 − 6600) = 6780
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from accounts.models import Deployment
from hitl.models import HITLRequest, Resolution, Source, Status
from hitl.services import rollups

NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
PERIOD = {"since": "2026-01-05", "until": "2026-01-11"}


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@dataclass
class Row:
    created: datetime
    status: str = Status.PENDING
    resolved: datetime | None = None
    outcome: str | None = None
    source: str = ""
    sla_due: datetime | None = None
    flow: str = "content"
    method: str = "review_article"
    assignee: str = "alice@example.com"


ROWS: list[Row] = [
    # 1-4: alice reviews articles, with an SLA
    Row(at(5, 10), Status.RESPONDED, at(5, 10, 10), "approved", Source.EMAIL, at(5, 11)),  # 600 s, met
    Row(at(5, 11), Status.RESPONDED, at(5, 11, 20), "approved", Source.DASHBOARD, at(5, 12)),  # 1200 s, met
    Row(at(6, 9), Status.RESPONDED, at(6, 10, 30), "rejected", Source.EMAIL, at(6, 10)),  # 5400 s, missed
    Row(at(6, 12), Status.RESPONDED, at(6, 12, 5), "needs_revision", Source.API, at(6, 13)),  # 300 s, met
    # 5-8: bob reviews summaries
    Row(
        at(7, 8),
        Status.RESPONDED,
        at(7, 10),
        "approved",
        Source.EMAIL,
        None,
        method="review_summary",
        assignee="bob@example.com",
    ),  # 7200 s
    Row(
        at(7, 9),
        Status.AUTO_RESPONDED,
        at(7, 10),
        "approved",
        Source.AUTO,
        at(7, 9, 30),
        method="review_summary",
        assignee="bob@example.com",
    ),  # SLA miss
    Row(
        at(8, 9),
        Status.TIMED_OUT,
        at(8, 11),
        None,
        Source.AUTO,
        at(8, 10),
        method="review_summary",
        assignee="bob@example.com",
    ),  # SLA miss
    Row(
        at(8, 10),
        Status.CANCELLED,
        at(8, 10, 30),
        None,
        Source.API,
        at(8, 11),
        method="review_summary",
        assignee="bob@example.com",
    ),  # not counted for SLA
    # 9-14: payments
    Row(
        at(9, 14),
        Status.RESPONDED,
        at(9, 14, 0, 45),
        "approved",
        Source.TELEGRAM,
        flow="payments",
        method="approve_payment",
    ),  # 45 s
    Row(
        at(4, 23, 10), Status.RESPONDED, at(5, 1), "approved", Source.EMAIL, flow="payments", method="approve_payment"
    ),  # created before the period, 6600 s
    Row(at(10, 8), sla_due=at(10, 9), flow="payments", method="approve_payment"),  # pending, overdue
    Row(at(11, 20), sla_due=at(12, 10), flow="payments", method="approve_payment"),  # pending, not yet overdue
    Row(at(20, 8, month=12, year=2025), assignee="bob@example.com"),  # pending since Dec 20: the oldest
    Row(
        at(10, 10),
        Status.RESPONDED,
        at(10, 10, 15),
        None,
        Source.EMAIL,
        flow="payments",
        method="approve_payment",
        assignee="bob@example.com",
    ),  # 900 s, free-form
    # 15: after the period (created and answered on the 12th)
    Row(at(12, 8), Status.RESPONDED, at(12, 8, 30), "approved", Source.EMAIL),
]
OTHER_DEPLOYMENT_ROW = Row(
    at(6, 10), Status.RESPONDED, at(6, 10, 1), "rejected", Source.EMAIL, assignee="carol@other.example"
)


def insert(deployment: Deployment, rows: list[Row]) -> list[HITLRequest]:
    """Insert requests and their resolutions with exact timestamps, as the services would leave them."""
    requests = HITLRequest.objects.bulk_create(
        [
            HITLRequest(
                deployment=deployment,
                flow_name=row.flow,
                flow_id=f"run-{i}",
                method_name=row.method,
                message="Review",
                emit_options=["approved", "rejected", "needs_revision"],
                assigned_to_email=row.assignee,
                assignment_step="explicit",
                status=row.status,
                sla_due_at=row.sla_due,
                resolved_at=row.resolved,
            )
            for i, row in enumerate(rows)
        ]
    )
    # created_at is auto_now_add: bulk_create stamps "now", bulk_update writes what we say.
    for request, row in zip(requests, rows, strict=True):
        request.created_at = row.created
        request.updated_at = row.resolved or row.created
    HITLRequest.objects.bulk_update(requests, ["created_at", "updated_at"])
    Resolution.objects.bulk_create(
        [
            Resolution(
                request=request,
                status=row.status,
                outcome=row.outcome,
                source=row.source,
                responder=row.assignee if row.status == Status.RESPONDED else "system",
                result={},
                answered_within_sla=(row.resolved <= row.sla_due) if row.sla_due else None,
                created_at=row.resolved,
            )
            for request, row in zip(requests, rows, strict=True)
            if row.resolved is not None
        ]
    )
    # Inserted behind the services' back: their rollups (SPEC §19) are added as a rebuild would.
    rollups.count_existing(HITLRequest.objects.filter(pk__in=[r.pk for r in requests]))
    return requests


def load(deployment: Deployment, other: Deployment) -> None:
    insert(deployment, ROWS)
    insert(other, [OTHER_DEPLOYMENT_ROW])


def more_rows(count: int, *, start: datetime = NOW - timedelta(days=6)) -> list[Row]:
    """Extra varied rows (new flows, methods, reviewers, days) for the query-count tests."""
    statuses = [Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT, Status.CANCELLED, Status.PENDING]
    rows = []
    for i in range(count):
        created = start + timedelta(hours=5 * i)
        status = statuses[i % len(statuses)]
        resolved = created + timedelta(minutes=7 * i + 1) if status != Status.PENDING else None
        rows.append(
            Row(
                created,
                status,
                resolved,
                ["approved", "rejected", None][i % 3] if status in (Status.RESPONDED, Status.AUTO_RESPONDED) else None,
                [Source.EMAIL, Source.API, Source.DASHBOARD][i % 3] if status == Status.RESPONDED else Source.AUTO,
                created + timedelta(hours=1),
                flow=f"flow-{i % 4}",
                method=f"method-{i % 5}",
                assignee=f"reviewer{i % 6}@example.com",
            )
        )
    return rows
