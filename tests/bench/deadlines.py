"""10,000 deadlines passing at once, swept by ONE worker: all resolved exactly once within 60 s? (issue 8)

    .venv/bin/python tests/bench/deadlines.py  # 10,000 requests, writes results/deadlines.md
    .venv/bin/python tests/bench/deadlines.py --requests 2000 --no-write
    .venv/bin/python tests/bench/deadlines.py --profile 1000     # one sweep in this process: queries, pyinstrument

The stack is production's: a scratch PostgreSQL database (`hitl_bench_workers`, dropped at the end),
Redis (db 7) as the broker, one `manage.py qcluster` with HITL_Q_WORKERS=1, settings from environment
variables (DEBUG=0). The requests are bulk-inserted with the rows a real `create_request` writes (the
request with its routing fields and deadlines, and its chained `request.created` / `request.assigned`
audit events), all due at the same instant in the past, with a mix of on-timeout behaviours:
default with a default outcome (emit and approval mode) → auto_responded; fail, continue, and default
without a default outcome (text mode) → timed_out.

The sweep is started the way the cluster starts it, only sooner: the `hitl-sweep` schedule's next run
is set to now and django-q2's scheduler is ticked, which puts `hitl.tasks.sweep` on the Redis broker for
the worker (the cluster's own scheduler would do the same within 30 s). The time is measured from the
sweep task's start (its django-q2 Task row) to the last resolution's audit event, and, as a check, by
the wall clock from the tick until 10,000 Resolution rows are counted. Exactly once: one Resolution
per request, exactly one `request.auto_responded` / `request.timed_out` event per request, no refused
answers, the statuses each kind must end in, and the audit chain verified.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import Stack, table, wait_until, write_section  # noqa: E402

GOAL_SECONDS = 60.0
# (mode, emit_options, on_timeout, default_outcome, expected status)
KINDS: list[tuple[str, list[str], str, str, str]] = [
    ("emit", ["approved", "rejected"], "default", "approved", "auto_responded"),
    ("approval", [], "default", "rejected", "auto_responded"),
    ("emit", ["approved", "rejected"], "fail", "approved", "timed_out"),
    ("emit", ["approved", "rejected"], "continue", "", "timed_out"),
    ("text", [], "default", "", "timed_out"),
]


def seed(count: int) -> dict[str, str]:
    """Bulk-insert `count` pending requests whose deadline passed an hour ago, with the audit events
    create_request writes (unsealed: the sealer chains them). Returns {request id: expected status}."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.services import create_deployment
    from audit.models import AuditEvent, EventType
    from hitl.models import AssignmentStep, HITLRequest

    deployment = create_deployment(name="Deadlines bench", creator_email="lead@example.com")
    created = timezone.now() - timedelta(hours=2)
    due = created + timedelta(minutes=60)  # one instant for all: "at once"
    expected: dict[str, str] = {}
    for start in range(0, count, 2000):
        requests, events = [], []
        for i in range(start, min(count, start + 2000)):
            mode, emit, on_timeout, default, status = KINDS[i % len(KINDS)]
            request = HITLRequest(
                deployment=deployment,
                created_at=created,
                flow_id=f"bench-{i // 10}",
                flow_name="bench",
                method_name="review_item",
                message=f"Review item {i}?",
                mode=mode,
                emit_options=emit,
                state={"item": i},
                timeout_seconds=3600,
                default_outcome=default,
                on_timeout=on_timeout,
                link_ttl_seconds=deployment.link_ttl_seconds,
                assigned_to_email="lead@example.com",
                assignment_step=AssignmentStep.CREATOR,
                due_at=due,
            )
            requests.append(request)
            expected[str(request.pk)] = status
            for event_type, actor, data in (
                (EventType.REQUEST_CREATED, "api-key:bench", {"method_name": "review_item", "mode": mode}),
                (
                    EventType.REQUEST_ASSIGNED,
                    "system",
                    {"assigned_to_email": "lead@example.com", "step": "creator", "rule_id": None, "rule_name": ""},
                ),
            ):
                events.append(
                    AuditEvent(
                        created_at=created,
                        event_type=event_type,
                        actor=actor,
                        source="api",
                        target_type="hitlrequest",
                        target_id=str(request.pk),
                        deployment_id=deployment.pk,
                        data=data,
                    )
                )
        with transaction.atomic():
            HITLRequest.objects.bulk_create(requests)
            AuditEvent.objects.bulk_create(events)  # unsealed, as record_events writes them
    return expected


def check(expected: dict[str, str]) -> dict[str, Any]:
    """Exactly once, from the database's point of view."""
    from django.db.models import Count

    from audit.models import AuditEvent, EventType
    from audit.services import verify_chain
    from hitl.models import HITLRequest, Resolution

    ids = list(expected)
    kinds = [EventType.AUTO_RESPONDED, EventType.TIMED_OUT]
    per_request = (
        AuditEvent.objects.filter(event_type__in=kinds, target_id__in=ids)
        .values("target_id")
        .annotate(n=Count("id"))
        .values_list("target_id", "n")
    )
    counts = dict(per_request)
    statuses = dict(HITLRequest.objects.filter(pk__in=ids).values_list("pk", "status"))
    wrong = sum(1 for pk, status in statuses.items() if status != expected[str(pk)])
    resolution_statuses = dict(
        Resolution.objects.filter(request_id__in=[uuid.UUID(pk) for pk in ids]).values_list("request_id", "status")
    )
    checked, broken = verify_chain()
    return {
        "resolutions": len(resolution_statuses),
        "resolution_mismatch": sum(1 for pk, s in resolution_statuses.items() if s != statuses.get(pk)),
        "requests_with_event": len(counts),
        "duplicate_events": sum(n - 1 for n in counts.values() if n > 1),
        "missing_events": len(ids) - len(counts),
        "wrong_status": wrong,
        "still_pending": sum(1 for s in statuses.values() if s == "pending"),
        "refused": AuditEvent.objects.filter(event_type=EventType.RESPONSE_REFUSED).count(),
        "chain": "ok" if broken is None else f"broken at {broken.event_id}: {broken.reason}",
        "chain_events": checked,
    }


def tick_sweep() -> float:
    """Make the minute schedule due and tick django-q2's scheduler (what the cluster does every 30 s)."""
    from django.utils import timezone
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from hitl.schedules import SWEEP_NAME

    Schedule.objects.filter(name=SWEEP_NAME).update(next_run=timezone.now() - timedelta(seconds=1))
    ticked = time.monotonic()
    scheduler()
    return ticked


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.db.models import Max
    from django.utils import timezone
    from django_q.models import Schedule, Task

    from audit.models import AuditEvent, EventType
    from hitl.models import Resolution
    from hitl.schedules import SWEEP_FUNC, SWEEP_NAME

    # Keep the cluster's own scheduler off the sweep until we tick it (and every later minute's run
    # still happens: the schedule is back to "due" after our tick).
    Schedule.objects.filter(name=SWEEP_NAME).update(next_run=timezone.now() + timedelta(hours=1))
    t0 = time.monotonic()
    expected = seed(args.requests)
    seeded = time.monotonic() - t0
    print(f"seeded {len(expected)} requests in {seeded:.1f}s", flush=True)
    startup = args.stack.start_qcluster()
    print(f"qcluster ready in {startup:.1f}s", flush=True)

    ticked = tick_sweep()
    done = wait_until(lambda: Resolution.objects.count() >= args.requests, timeout=args.timeout, interval=0.1)
    wall = time.monotonic() - ticked
    counted = Resolution.objects.count()
    # Let a sweep still running finish its batch before checking (and stop the clock for the check).
    wait_until(Task.objects.filter(func=SWEEP_FUNC).exists, timeout=120, interval=0.5)
    args.stack.stop("qcluster")
    sweeps = list(Task.objects.filter(func=SWEEP_FUNC).order_by("started").values("started", "stopped", "result"))
    last = AuditEvent.objects.filter(event_type__in=[EventType.AUTO_RESPONDED, EventType.TIMED_OUT]).aggregate(
        last=Max("created_at")
    )["last"]
    first_start = sweeps[0]["started"] if sweeps else None
    span = (last - first_start).total_seconds() if (last and first_start) else float("nan")
    result = {
        "requests": args.requests,
        "seed_seconds": seeded,
        "done": done,
        "wall_seconds": wall,
        "counted": counted,
        "span_seconds": span,
        "sweeps": sweeps,
        **check(expected),
    }
    return result


def profile(args: argparse.Namespace) -> str:
    """One sweep in this process over `args.profile` due requests: queries per request and a profile."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from hitl.services.sweep import sweep

    expected = seed(args.profile)
    profiler = Profiler(interval=0.0005)
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        profiler.start()
        report = sweep()
        profiler.stop()
        elapsed = time.monotonic() - started
    outcome = check(expected)
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    out = args.stack.tmp / "sweep-profile.txt"
    out.write_text(text)
    summary = (
        f"{args.profile} due requests, one sweep() in-process: {report}; {elapsed:.2f}s "
        f"({elapsed / max(report.expired, 1) * 1000:.2f} ms/request), {len(queries)} queries "
        f"({len(queries) / max(report.expired, 1):.1f} per resolved request); check: {outcome}"
    )
    print(summary)
    print(f"profile: {out}")
    print("\n".join(text.splitlines()[:60]))
    return summary


def markdown(r: dict[str, Any], label: str) -> str:
    ok = (
        r["done"]
        and r["span_seconds"] <= GOAL_SECONDS
        and r["resolutions"] == r["requests"]
        and r["duplicate_events"] == 0
        and r["missing_events"] == 0
        and r["wrong_status"] == 0
        and r["chain"] == "ok"
    )
    sweeps = [
        [
            i + 1,
            s["started"].strftime("%H:%M:%S.%f")[:-3],
            f"{(s['stopped'] - s['started']).total_seconds():.2f}",
            f"`{s['result']}`",
        ]
        for i, s in enumerate(r["sweeps"])
    ]
    return f"""**Variant.** {label}

**Method.** See the module docstring of `tests/bench/deadlines.py`: {r["requests"]:,} pending requests bulk-inserted
with their `request.created`/`request.assigned` audit events (seeding took {r["seed_seconds"]:.1f} s), due at
the same instant, a mix of on-timeout behaviours (1/5 each: emit default+outcome, approval default+outcome →
auto_responded; fail, continue, text mode without default → timed_out). One `qcluster`, `HITL_Q_WORKERS=1`,
Redis broker, PostgreSQL. The `hitl-sweep` schedule is made due and django-q2's scheduler ticked.

**Figures.**

{
        table(
            ["measure", "value"],
            [
                ["sweep task start → last resolution (audit time)", f"{r['span_seconds']:.1f} s"],
                [
                    "tick → all Resolution rows counted (wall clock, 0.1 s polls)",
                    f"{r['wall_seconds']:.1f} s" + ("" if r["done"] else f" (gave up: {r['counted']:,} counted)"),
                ],
                ["resolutions / requests", f"{r['resolutions']:,} / {r['requests']:,}"],
                [
                    "requests with a timeout event / duplicates / missing",
                    f"{r['requests_with_event']:,} / {r['duplicate_events']} / {r['missing_events']}",
                ],
                ["wrong final status / still pending", f"{r['wrong_status']} / {r['still_pending']}"],
                ["refused answers", r["refused"]],
                ["resolution ≠ request status", r["resolution_mismatch"]],
                ["audit chain", f"{r['chain']} ({r['chain_events']:,} events)"],
            ],
        )
    }

Sweep tasks run (django-q2 Task rows):

{table(["#", "started (UTC)", "duration (s)", "result"], sweeps)}

**Goal.** All {r["requests"]:,} resolved exactly once within {GOAL_SECONDS:.0f} s of the sweep's start.
**Met?** {"**Yes.**" if ok else "**No.**"}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=180.0, help="give up waiting after this many seconds")
    parser.add_argument("--profile", type=int, default=0, help="profile one in-process sweep over N requests")
    parser.add_argument("--database", default="hitl_bench_workers")
    parser.add_argument("--label", default="", help="what this run measures (e.g. 'before the fix')")
    parser.add_argument("--append", action="store_true", help="append to the results file")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    args.stack = Stack(database=args.database, redis_db=7, workers=1)
    args.stack.create_database()
    args.stack.setup_django()
    try:
        if args.profile:
            profile(args)
            return
        result = run(args)
        print({k: v for k, v in result.items() if k != "sweeps"})
        for s in result["sweeps"]:
            print(s)
        if not args.no_write:
            path = write_section(
                "deadlines",
                f"10,000 deadlines at once, one worker{f' — {args.label}' if args.label else ''}",
                markdown(result, args.label or "current code"),
                append=args.append,
            )
            print(f"wrote {path}")
    finally:
        args.stack.stop_all()
        args.stack.drop_database()


if __name__ == "__main__":
    main()
