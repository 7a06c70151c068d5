"""On time (issue 21): how late do deadlines and reminders fire with the workers' ticker, and what does
the ticker cost when there is nothing to do?

    .venv/bin/python tests/bench/on_time.py                 # 100,000 idle pending requests, 2 workers
    .venv/bin/python tests/bench/on_time.py --idle 10000 --due 100 --no-write

The stack is production's (tests/bench/_stack.py): a scratch PostgreSQL database (`hitl_bench_ontime`,
dropped at the end), Redis (db 8) as the broker, settings from environment variables (DEBUG=0).

1. **Idle cost.** `--idle` pending requests whose deadlines are all a day away are bulk-inserted and
   the tables analyzed (as autovacuum would); then `sweep.tick()` runs 200 times in this process (the
   pass every worker's ticker runs every HITL_TICK_SECONDS): its time and queries per pass, beside a
   bare `SELECT 1` round trip measured in the same run (the ratio is what carries over to another
   machine), and the share of one core it takes at a 2 s tick.
2. **Lateness.** Two `manage.py worker` processes (each with its ticker, HITL_TICK_SECONDS=2) run while
   `--due` requests get a timeout and `--due` others a reminder, due at instants spread over the next
   30 s. Lateness = the resolution's (or the reminder's) time minus its due time. Exactly once: one
   Resolution and one timeout event per timed request, one reminder per reminded request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import Stack, percentile, table, wait_until, write_section  # noqa: E402

GOAL_LATE_SECONDS = 5.0
DUE: dict[Any, Any] = {}  # request id → the instant its timeout or reminder was due (seeded)
TICKS = 200


def seed(count: int, *, due_in: list[float] | None = None, kind: str = "idle") -> list[Any]:
    """Bulk-insert pending requests. `kind` idle: every deadline a day away; timeout / reminder: that
    deadline at now + due_in[i] seconds."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Deployment
    from accounts.services import create_deployment
    from hitl.models import AssignmentStep, HITLRequest

    deployment = Deployment.objects.filter(name="On-time bench").first() or create_deployment(
        name="On-time bench", creator_email="lead@example.com"
    )
    now = timezone.now()
    later = now + timedelta(days=1)
    ids: list[Any] = []
    for start in range(0, count, 2000):
        rows = []
        for i in range(start, min(count, start + 2000)):
            due = now + timedelta(seconds=due_in[i]) if due_in else later
            rows.append(
                HITLRequest(
                    deployment=deployment,
                    created_at=now,
                    flow_id=f"{kind}-{i}",
                    flow_name="bench",
                    method_name="review_item",
                    message=f"Review item {i}?",
                    mode="emit",
                    emit_options=["approved", "rejected"],
                    timeout_seconds=86400,
                    default_outcome="approved",
                    on_timeout="default",
                    link_ttl_seconds=deployment.link_ttl_seconds,
                    assigned_to_email="lead@example.com",
                    assignment_step=AssignmentStep.CREATOR,
                    due_at=due if kind in ("idle", "timeout") else later,
                    sla_due_at=later,
                    reminder_due_at=due if kind in ("idle", "reminder") else later,
                    escalation_due_at=later,
                )
            )
        with transaction.atomic():
            HITLRequest.objects.bulk_create(rows)
        ids.extend(r.pk for r in rows)
        DUE.update({r.pk: (r.due_at if kind == "timeout" else r.reminder_due_at) for r in rows} if due_in else {})
    return ids


def idle_cost() -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hitl.services.sweep import tick

    def timed(fn: Any) -> list[float]:
        out = []
        for _ in range(TICKS):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
        return out

    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    timed(select_one)  # warm
    tick()
    bare = timed(select_one)
    passes = timed(tick)
    with CaptureQueriesContext(connection) as queries:
        tick()
    return {
        "tick_ms_median": statistics.median(passes),
        "tick_ms_p99": percentile(passes, 99),
        "select1_ms_median": statistics.median(bare),
        "queries": len(queries),
        "query_list": [q["sql"][:140] for q in queries.captured_queries],
    }


def lateness(stack: Stack, due: int) -> dict[str, Any]:
    import random

    from django.db.models import Count

    from audit.models import AuditEvent, EventType
    from hitl.models import HITLRequest, Resolution

    for n in (1, 2):
        stack._spawn(f"worker{n}", [sys.executable, "manage.py", "worker"], HITL_TICK_SECONDS="2")
    time.sleep(8)  # both clusters up (their tickers start at once; the queue is not needed for timeouts)
    rng = random.Random(21)
    spread = [5 + rng.random() * 30 for _ in range(due)]
    timed = seed(due, due_in=spread, kind="timeout")
    reminded = seed(due, due_in=spread, kind="reminder")
    wait_until(lambda: Resolution.objects.filter(request_id__in=timed).count() >= due, timeout=120, interval=0.5)
    wait_until(
        lambda: HITLRequest.objects.filter(pk__in=reminded, reminder_sent_at__isnull=False).count() >= due,
        timeout=120,
        interval=0.5,
    )
    time.sleep(3)  # anything happening twice would have happened by now
    for n in (1, 2):
        stack.stop(f"worker{n}")
    late = [
        (resolved_at - DUE[pk]).total_seconds()
        for pk, resolved_at in Resolution.objects.filter(request_id__in=timed).values_list("request_id", "created_at")
    ]
    reminder_late = [
        (sent - DUE[pk]).total_seconds()
        for pk, sent in HITLRequest.objects.filter(pk__in=reminded).values_list("pk", "reminder_sent_at")
        if sent
    ]
    events = (
        AuditEvent.objects.filter(event_type=EventType.AUTO_RESPONDED, target_id__in=[str(pk) for pk in timed])
        .values("target_id")
        .annotate(n=Count("id"))
    )
    reminders = (
        AuditEvent.objects.filter(
            event_type=EventType.NOTIFICATION_SENT,
            data__action="reminder_requested",
            target_id__in=[str(pk) for pk in reminded],
        )
        .values("target_id")
        .annotate(n=Count("id"))
    )
    return {
        "due": due,
        "resolved": len(late),
        "timeout_late_p50": statistics.median(late) if late else float("nan"),
        "timeout_late_p99": percentile(late, 99) if late else float("nan"),
        "timeout_late_max": max(late) if late else float("nan"),
        "early": sum(1 for x in late + reminder_late if x < 0),
        "reminded": len(reminder_late),
        "reminder_late_p50": statistics.median(reminder_late) if reminder_late else float("nan"),
        "reminder_late_max": max(reminder_late) if reminder_late else float("nan"),
        "timeout_events_dup": sum(e["n"] - 1 for e in events if e["n"] > 1),
        "timeout_events": len(events),
        "reminder_events_dup": sum(e["n"] - 1 for e in reminders if e["n"] > 1),
    }


def markdown(idle: dict[str, Any], late: dict[str, Any], idle_count: int) -> str:
    share = idle["tick_ms_median"] / 2000 * 100
    met = late["timeout_late_max"] < GOAL_LATE_SECONDS and late["reminder_late_max"] < GOAL_LATE_SECONDS
    exactly = late["timeout_events_dup"] == 0 and late["reminder_events_dup"] == 0 and late["early"] == 0
    queries = "\n".join(f"    {q}" for q in idle["query_list"])
    return f"""**Method.** See the module docstring of `tests/bench/on_time.py`: PostgreSQL, Redis, production
settings; {idle_count:,} pending requests with every deadline a day away for the idle cost; two
`manage.py worker` processes with `HITL_TICK_SECONDS=2` for the lateness of {late["due"]} timeouts and
{late["due"]} reminders due at instants spread over 30 s.

{
        table(
            ["measure", "value", "goal", "met"],
            [
                [
                    "idle pass (`sweep.tick()`), median / p99",
                    f"{idle['tick_ms_median']:.2f} ms / {idle['tick_ms_p99']:.2f} ms",
                    "—",
                    "",
                ],
                [
                    "idle pass ÷ a bare `SELECT 1` round trip (same run)",
                    f"{idle['tick_ms_median'] / idle['select1_ms_median']:.1f}×",
                    "—",
                    "",
                ],
                ["queries per idle pass", idle["queries"], "—", ""],
                ["share of one core at a 2 s tick", f"{share:.2f} %", "—", ""],
                [
                    "timeout lateness p50 / p99 / max",
                    f"{late['timeout_late_p50']:.2f} / {late['timeout_late_p99']:.2f} / "
                    f"{late['timeout_late_max']:.2f} s",
                    f"< {GOAL_LATE_SECONDS:.0f} s",
                    "yes" if late["timeout_late_max"] < GOAL_LATE_SECONDS else "no",
                ],
                [
                    "reminder lateness p50 / max",
                    f"{late['reminder_late_p50']:.2f} / {late['reminder_late_max']:.2f} s",
                    f"< {GOAL_LATE_SECONDS:.0f} s",
                    "yes" if late["reminder_late_max"] < GOAL_LATE_SECONDS else "no",
                ],
                [
                    "resolved / reminded / early / duplicate events",
                    f"{late['resolved']} / {late['reminded']} / {late['early']} / "
                    f"{late['timeout_events_dup'] + late['reminder_events_dup']}",
                    "all, once, never early",
                    "yes" if exactly and late["resolved"] == late["due"] else "no",
                ],
            ],
        )
    }

The idle pass's queries (the advisory lock, the four deadline lookups on partial indexes, the due webhook
deliveries, the unlock):

{queries}

**Met?** {"**Yes.**" if met and exactly else "**No.**"}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--database", default="hitl_bench_ontime")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    stack = Stack(database=args.database, redis_db=8, workers=1)
    stack.create_database()
    stack.setup_django()
    try:
        started = time.monotonic()
        seed(args.idle)
        print(f"seeded {args.idle:,} idle requests in {time.monotonic() - started:.1f}s", flush=True)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk insert; plans without it are not production's
        idle = idle_cost()
        print({k: v for k, v in idle.items() if k != "query_list"}, flush=True)
        late = lateness(stack, args.due)
        print(late, flush=True)
        if not args.no_write:
            path = write_section("on_time", "On time: the workers' ticker", markdown(idle, late, args.idle))
            print(f"wrote {path}")
    finally:
        stack.stop_all()
        stack.drop_database()


if __name__ == "__main__":
    main()
