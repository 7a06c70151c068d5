"""Six weeks of answered requests for the demo deployment, so the analytics page has something to show.

Idempotent (the rows are marked by their flow id prefix) and deterministic (a fixed random seed, dates
relative to today). Rows are inserted directly, with the timestamps they would have had: the services
stamp "now", and history is by definition not now. Nothing is notified, no webhook fires; one audit
event records that synthetic history was loaded.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl.models import AssignmentStep, HITLRequest, Mode, Resolution, Source, Status
from hitl.results import build_result
from hitl.services import rollups

DEMO_ORG = "Demo Org"
DEMO_DEPLOYMENT = "Content Review"
MARK = "demo-history-"
DAYS = 42
SEED = 7


@dataclass(frozen=True)
class Step:
    """A review point of the demo flows (flows/demo.py) with who answers it and how fast."""

    flow: str
    method: str
    weight: float
    mode: str
    options: tuple[str, ...]  # emit options; the choices for "choices" mode
    reviewers: tuple[tuple[str, float, float], ...]  # email, weight, median minutes to answer
    message: str


STEPS = (
    Step(
        "content_approval",
        "review_content",
        0.45,
        Mode.EMIT,
        ("approved", "rejected", "needs_revision"),
        (("sales@example.com", 0.5, 32), ("ana@example.com", 0.3, 14), ("ben@example.com", 0.2, 70)),
        "Please review this content for brand compliance:",
    ),
    Step(
        "article_picker",
        "pick_article",
        0.15,
        Mode.CHOICES,
        ("Durable workflows without a workflow engine", "Email is still the universal inbox", "Auditing AI decisions"),
        (("ana@example.com", 0.7, 9), ("ben@example.com", 0.3, 35)),
        "Which article should we research next?",
    ),
    Step(
        "expense_approval",
        "approve_expense",
        0.4,
        Mode.APPROVAL,
        ("approved", "rejected"),
        (("finance@example.com", 0.8, 20), ("cfo@example.com", 0.2, 110)),
        "Approve this expense?",
    ),
)
OUTCOME_WEIGHTS = {"approved": 0.7, "rejected": 0.14, "needs_revision": 0.16}
SOURCES = ((Source.EMAIL, 0.5), (Source.DASHBOARD, 0.3), (Source.API, 0.12), (Source.TELEGRAM, 0.08))
AUTO_AFTER = timedelta(hours=4)


def _pick(rng: random.Random, weighted: Any) -> Any:
    items = list(weighted)
    return rng.choices([i[0] for i in items], weights=[i[1] for i in items])[0]


class Command(BaseCommand):
    help = "Load six weeks of answered demo requests (for the analytics page). Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = Deployment.objects.filter(organization__name=DEMO_ORG, name=DEMO_DEPLOYMENT).first()
        if deployment is None:
            self.stdout.write("No demo deployment: run `manage.py load_demo` first.")
            return
        if HITLRequest.objects.filter(deployment=deployment, flow_id__startswith=MARK).exists():
            self.stdout.write("Demo history already loaded.")
            return
        count = self._load(deployment, timezone.now())
        self.stdout.write(f"Demo history: {count} requests over the last {DAYS} days.")

    @transaction.atomic
    def _load(self, deployment: Deployment, now: datetime) -> int:
        rng = random.Random(SEED)
        sla = timedelta(minutes=deployment.sla_target_minutes or 60)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        rows: list[tuple[HITLRequest, datetime, dict[str, Any] | None]] = []
        for day_index in range(DAYS, -1, -1):
            day = today - timedelta(days=day_index)
            weekend = day.weekday() >= 5
            # A growing team: volume rises over the weeks, weekends are quiet.
            volume = rng.randint(1, 4) if weekend else rng.randint(6, 11) + (DAYS - day_index) // 8
            for _ in range(volume):
                created = day + timedelta(hours=rng.uniform(7.5, 18.5))
                if created >= now:
                    continue
                rows.append(self._row(rng, deployment, created, now, sla, len(rows)))
        requests = HITLRequest.objects.bulk_create([request for request, _, _ in rows])
        for request, (_, created, resolution) in zip(requests, rows, strict=True):
            request.created_at = created
            request.updated_at = resolution["created_at"] if resolution else created
        # created_at is auto_now_add, so bulk_create stamped "now"; bulk_update writes the real time.
        HITLRequest.objects.bulk_update(requests, ["created_at", "updated_at"], batch_size=500)
        Resolution.objects.bulk_create(
            [
                Resolution(request=request, **resolution)
                for request, (_, _, resolution) in zip(requests, rows, strict=True)
                if resolution
            ],
            batch_size=500,
        )
        # Written behind the services' back: the analytics rollups (SPEC §19) are added as a rebuild would.
        rollups.count_existing(HITLRequest.objects.filter(pk__in=[r.pk for r in requests]))
        record_event(
            EventType.CONFIG_CHANGED,
            actor="demo",
            target=deployment,
            deployment_id=deployment.pk,
            data={"action": "demo_history.loaded", "requests": len(requests), "days": DAYS},
        )
        return len(requests)

    def _row(
        self, rng: random.Random, deployment: Deployment, created: datetime, now: datetime, sla: timedelta, n: int
    ) -> tuple[HITLRequest, datetime, dict[str, Any] | None]:
        step = _pick(rng, ((s, s.weight) for s in STEPS))
        email, _, median_minutes = _pick(rng, ((r, r[1]) for r in step.reviewers))
        choices = [
            {"id": f"option_{i}", "label": label, "value": label.lower(), "description": "", "raw": {"title": label}}
            for i, label in enumerate(step.options, start=1)
        ]
        request = HITLRequest(
            deployment=deployment,
            flow_id=f"{MARK}{n:04d}",
            flow_name=step.flow,
            method_name=step.method,
            message=step.message,
            content=f"Item #{1000 + n}",
            mode=step.mode,
            emit_options=list(step.options) if step.mode == Mode.EMIT else [],
            options=choices if step.mode == Mode.CHOICES else [],
            default_outcome="approved" if step.mode != Mode.CHOICES else "",
            timeout_seconds=int(AUTO_AFTER.total_seconds()),
            assigned_to_email=email,
            assignment_step=AssignmentStep.RULE_EMAIL,
            sla_due_at=created + sla,
            status=Status.PENDING,
        )
        # Log-normal answer times around the reviewer's median; some requests nobody answers in time.
        answer_after = timedelta(minutes=median_minutes * math.exp(rng.gauss(0, 0.85)))
        fate = rng.random()
        picked: list[dict[str, Any]] = []
        outcome: str | None = None
        if fate < 0.04:
            status, after, source = Status.CANCELLED, timedelta(minutes=rng.uniform(5, 90)), Source.API
        elif request.default_outcome and (fate < 0.06 or (fate < 0.12 and answer_after > AUTO_AFTER)):
            status, after, source, outcome = Status.AUTO_RESPONDED, AUTO_AFTER, Source.AUTO, request.default_outcome
        elif answer_after > AUTO_AFTER or fate < 0.06:
            status, after, source = Status.TIMED_OUT, AUTO_AFTER, Source.AUTO
        else:
            status, after, source = Status.RESPONDED, answer_after, _pick(rng, SOURCES)
            if step.mode == Mode.CHOICES:
                picked = [rng.choices(choices, weights=[5, 3, 2])[0]]
            else:
                outcome = _pick(rng, ((o, OUTCOME_WEIGHTS[o]) for o in step.options))
        resolved = created + after
        overdue_pending = rng.random() < 0.015  # a few forgotten ones make the backlog real
        if resolved > now or overdue_pending:
            request.due_at = None  # history: no live deadline for the sweeper to act on
            request.overdue = created + sla < now
            return request, created, None
        request.status, request.resolved_at, request.due_at = status, resolved, created + AUTO_AFTER
        responder = email if status == Status.RESPONDED else ("system" if source == Source.AUTO else "api-key:demo")
        result = build_result(
            request,
            outcome=outcome,
            feedback="",
            choices=picked,
            source=source,
            responder=responder,
            responded_at=resolved.isoformat().replace("+00:00", "Z"),
        )
        resolution = {
            "status": status,
            "outcome": outcome,
            "source": source,
            "responder": responder,
            "result": result,
            "answered_within_sla": resolved <= created + sla,
            "created_at": resolved,
        }
        return request, created, resolution
