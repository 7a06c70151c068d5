"""Fill the database with synthetic requests for benchmarks: `manage.py bench_seed --requests 1000000`.

Rows go straight into the tables in large batches (PostgreSQL `COPY`, SQLite `executemany`), with the
columns a real request and its resolution would have: a year of history over a few deployments, flows
and a couple of hundred reviewers, 2% still pending (some overdue), the rest responded, auto-responded,
timed out or cancelled, each resolved request with its `Resolution` row. Nothing is notified and no
audit event is written per row (one `config_changed` event records the load): the audit log's own
benchmark is `tests/bench/audit_export_memory.py`.

It also makes the people the benchmarks act as (printed at the end): `bench-manager` (manages every
bench deployment), `bench-reviewer` (responds on every bench deployment, and is one of the
assignees) and a full-access API key for the first deployment. Running it again adds more rows.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.lib.access import MANAGE_PERM, RESPOND_PERM
from accounts.models import ApiKey, Deployment
from accounts.services import create_api_key, create_deployment
from audit.models import EventType
from audit.services import record_event
from flows.models import DeploymentFlow
from hitl.models import AssignmentStep, HITLRequest, Mode, Resolution, Source, Status

ORG = "Bench Org"
PASSWORD = "bench-password"
FLOWS = (
    ("content_approval", "review_content", Mode.EMIT, ("approved", "rejected", "needs_revision")),
    ("expense_approval", "approve_expense", Mode.APPROVAL, ("approved", "rejected")),
    ("article_picker", "pick_article", Mode.CHOICES, ()),
    ("support_triage", "classify_ticket", Mode.TEXT, ()),
)
FATES = (
    (Status.RESPONDED, 0.78),
    (Status.AUTO_RESPONDED, 0.09),
    (Status.TIMED_OUT, 0.05),
    (Status.CANCELLED, 0.04),
    (Status.PENDING, 0.02),  # of the last two weeks; half of the last three days
)
SOURCES = (Source.EMAIL, Source.DASHBOARD, Source.API, Source.TELEGRAM)


def _converter(field: Field[Any, Any], db: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """The field's Python-to-database conversion, looked up once per column rather than per value."""
    if field.is_relation:
        field = field.target_field  # type: ignore[attr-defined]
    if isinstance(field, models.JSONField):
        return lambda value: json.dumps(value, cls=DjangoJSONEncoder)
    if isinstance(field, models.UUIDField) and db.vendor != "postgresql":
        return lambda value: value.hex
    if isinstance(field, models.DateTimeField) and db.vendor != "postgresql":  # psycopg takes aware datetimes
        return lambda value: value if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return lambda value: value


class Command(BaseCommand):
    help = "Bulk-insert synthetic requests (and their resolutions) for benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=1_000_000)
        parser.add_argument("--deployments", type=int, default=4)
        parser.add_argument("--reviewers", type=int, default=200)
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--batch", type=int, default=50_000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        deployments, key_secret = self._people(options["deployments"])
        rng = random.Random(options["seed"])
        reviewers = [f"reviewer{i}@bench.example" for i in range(options["reviewers"])]
        now = timezone.now()
        total = options["requests"]
        # Oldest first, as a live system appends them: rows of the same week share table pages.
        span = options["days"] * 86400
        ages = sorted((rng.random() ** 0.85 * span for _ in range(total)), reverse=True)  # busier recently
        done = 0
        while done < total:
            size = min(options["batch"], total - done)
            requests, resolutions = self._batch(rng, ages[done : done + size], deployments, reviewers, now)
            with transaction.atomic():
                self._insert(HITLRequest, requests)
                self._insert(Resolution, resolutions)
            done += size
            self.stdout.write(f"  {done:,} / {total:,} requests ({time.monotonic() - started:.0f} s)")
        record_event(
            EventType.CONFIG_CHANGED,
            actor="bench_seed",
            target=deployments[0],
            deployment_id=deployments[0].pk,
            data={"action": "bench_seed.loaded", "requests": total},
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE hitl_hitlrequest")
                cursor.execute("VACUUM ANALYZE hitl_resolution")
        elapsed = time.monotonic() - started
        self.stdout.write(f"Inserted {total:,} requests in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f}/s).")
        self.stdout.write(
            f"Users: bench-manager / bench-reviewer (password {PASSWORD!r}); deployments "
            f"{', '.join(str(d.pk) for d in deployments)}"
        )
        if key_secret:
            self.stdout.write(f"API key for deployment {deployments[0].pk}: {key_secret}")

    def _people(self, count: int) -> tuple[list[Deployment], str]:
        User = get_user_model()
        deployments = list(Deployment.objects.filter(organization__name=ORG).order_by("pk"))
        for i in range(len(deployments), count):
            deployment = create_deployment(
                name=f"Bench {i + 1}", creator_email="bench-creator@bench.example", organization=ORG, actor="bench_seed"
            )
            # Not all bench flows are registered ones (support_triage): attached as rows, unchecked.
            DeploymentFlow.objects.bulk_create([DeploymentFlow(deployment=deployment, flow_name=f) for f, *_ in FLOWS])
            deployments.append(deployment)
        for username, email, perm in (
            ("bench-manager", "bench-manager@bench.example", MANAGE_PERM),
            ("bench-reviewer", "reviewer0@bench.example", RESPOND_PERM),
        ):
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username=username, email=email, password=PASSWORD)
            for deployment in deployments:
                assign_perm(perm, user, deployment)
        secret = ""
        if not ApiKey.objects.filter(deployment=deployments[0], name="bench").exists():
            _, secret = create_api_key(deployments[0], name="bench", actor="bench_seed")
        return deployments, secret

    def _batch(
        self,
        rng: random.Random,
        ages: list[float],
        deployments: list[Deployment],
        reviewers: list[str],
        now: datetime,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        requests: list[dict[str, Any]] = []
        resolutions: list[dict[str, Any]] = []
        statuses = [s for s, _ in FATES]
        weights = [w for _, w in FATES]
        # Zipf-like: the busiest reviewer (reviewer0, the bench-reviewer user) gets about a sixth.
        reviewer_weights = list(accumulate(1 / (i + 1) for i in range(len(reviewers))))
        for age in ages:
            flow, method, mode, outcomes = FLOWS[rng.randrange(len(FLOWS))]
            status = rng.choices(statuses, weights)[0]
            if status == Status.PENDING and age > 14 * 86400 and rng.random() < 0.95:
                status = Status.RESPONDED  # older ones have mostly been answered; a few were forgotten
            elif age < 14 * 86400 and rng.random() < (0.6 if age < 3 * 86400 else 0.3):
                status = Status.PENDING
            created = now - timedelta(seconds=age)
            answer_after = timedelta(seconds=min(rng.lognormvariate(7.2, 1.1), 4 * 3600))
            sla_due = created + timedelta(hours=1)
            pk = uuid.uuid4()
            request = {
                "id": pk,
                "deployment_id": deployments[rng.randrange(len(deployments))].pk,
                "flow_id": f"bench-{pk.hex[:12]}",
                "flow_name": flow,
                "method_name": method,
                "message": f"Please review item {pk.hex[:8]} ({flow.replace('_', ' ')})",
                "content": "Synthetic content for the benchmark.",
                "mode": mode,
                "emit_options": list(outcomes) if mode == Mode.EMIT else [],
                "default_outcome": "approved" if outcomes else "",
                "timeout_seconds": 4 * 3600,
                "assigned_to_email": rng.choices(reviewers, cum_weights=reviewer_weights)[0],
                "assignment_step": AssignmentStep.RULE_EMAIL,
                "status": status,
                "created_at": created,
                "updated_at": created,
                "sla_due_at": sla_due,
                "overdue": status == Status.PENDING and sla_due < now,
                "due_at": None,
            }
            requests.append(request)
            if status == Status.PENDING:
                continue
            if status in (Status.AUTO_RESPONDED, Status.TIMED_OUT):
                answer_after = timedelta(hours=4)
            resolved = min(created + answer_after, now)
            request["resolved_at"] = resolved
            request["updated_at"] = resolved
            outcome = None
            source = Source.AUTO if status in (Status.AUTO_RESPONDED, Status.TIMED_OUT) else rng.choice(SOURCES)
            if status == Status.AUTO_RESPONDED:
                outcome = "approved" if outcomes else None
            elif status == Status.RESPONDED and outcomes:
                outcome = rng.choices(outcomes, [7, 2, 1][: len(outcomes)])[0]
            elif status == Status.CANCELLED:
                source = Source.API
            resolutions.append(
                {
                    "request_id": pk,
                    "status": status,
                    "outcome": outcome,
                    "source": source,
                    "responder": request["assigned_to_email"] if status == Status.RESPONDED else "system",
                    "result": {"outcome": outcome, "status": str(status), "source": str(source)},
                    "answered_within_sla": status == Status.RESPONDED and resolved <= sla_due,
                    "created_at": resolved,
                }
            )
        return requests, resolutions

    def _insert(self, model: type[Any], rows: list[dict[str, Any]]) -> None:
        """Every concrete column: the row's value, else the field's default, in the database's format."""
        if not rows:
            return
        fields = list(model._meta.concrete_fields)
        convert = {f.attname: _converter(f, connection) for f in fields}
        defaults = {f.attname: f.get_db_prep_save(f.get_default(), connection) for f in fields}
        for f in fields:
            if isinstance(f, models.JSONField):
                defaults[f.attname] = json.dumps(f.get_default())
        columns = [f.column for f in fields]
        table = model._meta.db_table
        values = [
            tuple(convert[f.attname](row[f.attname]) if f.attname in row else defaults[f.attname] for f in fields)
            for row in rows
        ]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"  # noqa: S608 - names from the model
                with cursor.cursor.copy(sql) as copy:
                    for value in values:
                        copy.write_row(value)
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                    values,
                )
