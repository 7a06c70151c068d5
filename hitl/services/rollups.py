"""The analytics rollups (SPEC §19), kept by the services in the same transaction as what they count.

Every write that changes a figure calls one function here, after its own compare-and-set has won:
`count_created` (create), `count_resolved` / `count_resolved_many` (every way a request leaves pending),
`count_reassigned` (the reviewer changed: the request's `created` and its decisions move with it) and
`count_decision` (an approver's decision, SPEC §13). Each turns the change into `Deltas` and applies
them with one `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` per table (SQLite ≥ 3.35 and
PostgreSQL both have it, with RETURNING), rows sorted by key so that concurrent writers lock them in
the same order. Called last in each transaction, so the rollup row's lock is held only until COMMIT.

`rebuild_rollups` recomputes everything from the requests with the same `Deltas` (one source of
truth for what a request contributes), a window of weeks at a time; `check_rollups` compares.

Response times go into a histogram (`RollupTime`): whole seconds below 50 have a cell each; above,
cells grow by 2 % (cell k holds [50·1.02^(k−50), 50·1.02^(k−49))). Each cell keeps its count and
the least and greatest value in it, so a percentile's ranks are read as the middle of their cell's
[least, greatest] — within 1 % of the true value (the cell is at most 2 % wide), and exact when the
cell holds one distinct value. Linear interpolation between two ranks within 1 % stays within 1 %.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Max, Min, Q

from hitl.models import Decision, HITLRequest, Resolution, Status
from hitl.rollup_models import Grain, Rollup, RollupAnswer, RollupApproval, RollupTime

COUNTS = (
    "created",
    "responded",
    "auto_responded",
    "timed_out",
    "cancelled",
    "sla_total",
    "sla_met",
    "response_seconds",
)
STATUS_COLUMN: dict[str, str] = {
    Status.RESPONDED: "responded",
    Status.AUTO_RESPONDED: "auto_responded",
    Status.TIMED_OUT: "timed_out",
    Status.CANCELLED: "cancelled",
}
DECIDED = (Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT)
ANSWERED = (Status.RESPONDED, Status.AUTO_RESPONDED)

EXACT_BELOW = 50  # seconds: one cell per second below this (2 % of 50 s is one second)
GROWTH = 1.02
_LOG_GROWTH = math.log(GROWTH)

# A rebuild or check reads this many days of requests at a time (a multiple of 7, windows start on a
# Monday, so no week row straddles two windows).
WINDOW_DAYS = 28
BATCH = 400  # rows per INSERT statement (SQLite allows 32,766 parameters)

Key = tuple[str, date, int, str, str, str]  # grain, day, deployment id, flow, method, reviewer
# The reviewer of the rows that sum every reviewer's (not an email, so never an assignee): figures not
# split or filtered by reviewer read these few rows instead of one per reviewer (200 reviewers at 1M
# requests: 146,000 week rows and 727,000 histogram cells a year, against 830 and 190,000).
ALL_REVIEWERS = "*"


def bucket_of(seconds: int) -> int:
    """The histogram cell of a whole-second response time."""
    if seconds < EXACT_BELOW:
        return seconds
    return EXACT_BELOW + int(math.log(seconds / EXACT_BELOW) / _LOG_GROWTH)


def whole_seconds(start: datetime, end: datetime) -> int:
    """`end − start` with each instant truncated to the second, as hitl.analytics.figures reports it."""
    return int(end.replace(microsecond=0).timestamp()) - int(start.replace(microsecond=0).timestamp())


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


class Facts(NamedTuple):
    """What a request's contribution depends on: its dimensions, its creation and its SLA."""

    deployment_id: int
    flow_name: str
    method_name: str
    reviewer: str
    created_at: datetime
    sla_due_at: datetime | None


def facts_of(request: HITLRequest, reviewer: str | None = None) -> Facts:
    return Facts(
        request.deployment_id,
        request.flow_name,
        request.method_name,
        request.assigned_to_email if reviewer is None else reviewer,
        request.created_at,
        request.sla_due_at,
    )


def _keys(facts: Facts, when: datetime) -> tuple[Key, ...]:
    """The rows a change counts in: its day and its week, for its reviewer and for all reviewers."""
    day, week = when.astimezone(UTC).date(), week_of(when.astimezone(UTC).date())
    dims = (facts.deployment_id, facts.flow_name, facts.method_name)
    return tuple(
        (grain, start, *dims, reviewer)
        for reviewer in (facts.reviewer, ALL_REVIEWERS)
        for grain, start in ((Grain.DAY.value, day), (Grain.WEEK.value, week))
    )


@dataclass
class Deltas:
    """Changes to the rollups, summed per row and cell; `apply` writes them."""

    counts: dict[Key, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    times: dict[tuple[Key, int], list[int]] = field(default_factory=dict)  # [n, low, high]
    answers: dict[tuple[Key, bool, str, str], int] = field(default_factory=lambda: defaultdict(int))
    approvals: dict[tuple[Key, str], list[int]] = field(default_factory=dict)  # [n, microseconds]

    def created(self, facts: Facts, sign: int = 1) -> None:
        for key in _keys(facts, facts.created_at):
            self.counts[key]["created"] += sign

    def resolved(self, facts: Facts, status: str, resolved_at: datetime, outcome: str | None, source: str) -> None:
        seconds = whole_seconds(facts.created_at, resolved_at)
        cell = bucket_of(seconds)
        for key in _keys(facts, resolved_at):
            counts = self.counts[key]
            counts[STATUS_COLUMN[status]] += 1
            if status in DECIDED and facts.sla_due_at is not None:
                counts["sla_total"] += 1
                if status == Status.RESPONDED and resolved_at <= facts.sla_due_at:
                    counts["sla_met"] += 1
            if status == Status.RESPONDED:
                counts["response_seconds"] += seconds
                known = self.times.get((key, cell))
                if known is None:
                    self.times[(key, cell)] = [1, seconds, seconds]
                else:
                    known[0], known[1], known[2] = known[0] + 1, min(known[1], seconds), max(known[2], seconds)
            if status in ANSWERED:
                self.answers[(key, status == Status.RESPONDED, outcome or "", source or "")] += 1

    def decision(self, facts: Facts, approver: str, decided_at: datetime, sign: int = 1) -> None:
        took = (decided_at - facts.created_at) // timedelta(microseconds=1)
        for key in _keys(facts, facts.created_at):
            known = self.approvals.setdefault((key, approver), [0, 0])
            known[0] += sign
            known[1] += sign * took

    def keys(self) -> list[Key]:
        found = set(self.counts)
        found.update(key for key, _ in self.times)
        found.update(key for key, *_ in self.answers)
        found.update(key for key, _ in self.approvals)
        return sorted(found)


# --- writing ---------------------------------------------------------------------------------------


def _chunks(rows: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def _day_value(day: date) -> Any:
    return connection.ops.adapt_datefield_value(day)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _upsert(
    model: type[Any], columns: list[str], conflict: list[str], updates: dict[str, str], rows: list[Any]
) -> list[Any]:
    """`INSERT … ON CONFLICT (conflict) DO UPDATE SET …` for `rows`, BATCH at a time; the RETURNING rows
    (id first, then the conflict columns) when the model is Rollup."""
    table = model._meta.db_table
    returning = f" RETURNING id, {', '.join(conflict)}" if model is Rollup else ""
    sets = ", ".join(f"{column} = {expression.format(t=table)}" for column, expression in updates.items())
    returned: list[Any] = []
    with connection.cursor() as cursor:
        for chunk in _chunks(rows):
            marks = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(chunk))
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {marks} "  # noqa: S608 - names from the models
                f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}{returning}"
            )
            cursor.execute(sql, [value for row in chunk for value in row])
            if returning:
                returned += cursor.fetchall()
    return returned


def _added(column: str) -> str:
    return f"{{t}}.{column} + excluded.{column}"


def apply(deltas: Deltas) -> None:
    """Write `deltas`: one statement per table (per BATCH rows)."""
    keys = deltas.keys()
    if not keys:
        return
    key_columns = ["grain", "day", "deployment_id", "flow_name", "method_name", "reviewer"]
    rows = [
        (grain, _day_value(day), *dims, *(deltas.counts.get(key, {}).get(c, 0) for c in COUNTS))
        for key in keys
        for grain, day, *dims in [key]
    ]
    returned = _upsert(Rollup, [*key_columns, *COUNTS], key_columns, {c: _added(c) for c in COUNTS}, rows)
    ids = {(grain, _as_date(day), *dims): pk for pk, grain, day, *dims in returned}
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    if deltas.times:
        _upsert(
            RollupTime,
            ["rollup_id", "bucket", "n", "low", "high"],
            ["rollup_id", "bucket"],
            {
                "n": _added("n"),
                "low": f"{least}({{t}}.low, excluded.low)",
                "high": f"{greatest}({{t}}.high, excluded.high)",
            },
            sorted((ids[key], cell, *values) for (key, cell), values in deltas.times.items()),
        )
    answers = [
        (ids[key], human, outcome, source, n) for (key, human, outcome, source), n in deltas.answers.items() if n
    ]
    if answers:
        _upsert(
            RollupAnswer,
            ["rollup_id", "human", "outcome", "source", "n"],
            ["rollup_id", "human", "outcome", "source"],
            {"n": _added("n")},
            sorted(answers),
        )
    if deltas.approvals:
        _upsert(
            RollupApproval,
            ["rollup_id", "approver", "n", "microseconds"],
            ["rollup_id", "approver"],
            {"n": _added("n"), "microseconds": _added("microseconds")},
            sorted((ids[key], approver, *values) for (key, approver), values in deltas.approvals.items()),
        )


# --- what the services call ------------------------------------------------------------------------


def count_created(request: HITLRequest) -> None:
    deltas = Deltas()
    deltas.created(facts_of(request))
    apply(deltas)


def count_resolved(request: HITLRequest, resolution: Resolution) -> None:
    count_resolved_many([(request, resolution)])


def count_resolved_many(resolved: Iterable[tuple[HITLRequest, Resolution]]) -> None:
    """Requests that just left pending (the sweeper's bulk timeouts: one statement per table)."""
    deltas = Deltas()
    for request, resolution in resolved:
        deltas.resolved(
            facts_of(request), resolution.status, resolution.created_at, resolution.outcome, resolution.source
        )
    apply(deltas)


def count_reassigned(request: HITLRequest, previous: str) -> None:
    """The pending request's reviewer changed from `previous`: its `created` count and the decisions
    already made on it move to the new reviewer's rows."""
    if previous == request.assigned_to_email:
        return
    deltas = Deltas()
    before, after = facts_of(request, reviewer=previous), facts_of(request)
    deltas.created(before, -1)
    deltas.created(after)
    if request.has_pool:
        for approver, decided_at in Decision.objects.filter(request_id=request.pk).values_list(
            "approver", "decided_at"
        ):
            deltas.decision(before, approver, decided_at, -1)
            deltas.decision(after, approver, decided_at)
    apply(deltas)


def count_decision(request: HITLRequest, decision: Decision) -> None:
    deltas = Deltas()
    deltas.decision(facts_of(request), decision.approver, decision.decided_at)
    apply(deltas)


def count_existing(requests: Any) -> None:
    """Add what already-written requests contribute (rows inserted directly: demo history, test data)."""
    deltas = Deltas()
    _contribute(deltas, requests, created=None, resolved=None)
    apply(deltas)


# --- rebuilding and checking -----------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _contribute(
    deltas: Deltas, requests: Any, created: tuple[datetime, datetime] | None, resolved: tuple[datetime, datetime] | None
) -> None:
    """Add the contributions of `requests` (a queryset) whose created_at / resolved_at fall in the given
    ranges (None: whatever they are)."""
    rows = requests.order_by().values_list(
        "pk",
        "deployment_id",
        "flow_name",
        "method_name",
        "assigned_to_email",
        "created_at",
        "sla_due_at",
        "status",
        "resolved_at",
        "resolution__outcome",
        "resolution__source",
        "policy",  # a pool of approvers (SPEC §13), whose decisions count
    )
    pooled: list[tuple[Any, Facts]] = []
    for (
        pk,
        dep,
        flow,
        method,
        reviewer,
        created_at,
        sla_due,
        status,
        resolved_at,
        outcome,
        source,
        policy,
    ) in rows.iterator(chunk_size=5000):
        facts = Facts(dep, flow, method, reviewer, created_at, sla_due)
        in_created = created is None or created[0] <= created_at < created[1]
        if in_created:
            deltas.created(facts)
            if policy:
                pooled.append((pk, facts))
        if (
            status in STATUS_COLUMN
            and resolved_at is not None
            and (resolved is None or resolved[0] <= resolved_at < resolved[1])
        ):
            deltas.resolved(facts, status, resolved_at, outcome, source or "")
    for start in range(0, len(pooled), 500):
        chunk = dict(pooled[start : start + 500])
        for request_id, approver, decided_at in Decision.objects.filter(request_id__in=list(chunk)).values_list(
            "request_id", "approver", "decided_at"
        ):
            deltas.decision(chunk[request_id], approver, decided_at)


def _expected(start: date, end: date) -> Deltas:
    """What the rollups of the days [start, end) must hold, from the requests."""
    lo, hi = _midnight(start), _midnight(end)
    deltas = Deltas()
    requests = HITLRequest.objects.filter(
        Q(created_at__gte=lo, created_at__lt=hi) | Q(resolved_at__gte=lo, resolved_at__lt=hi)
    )
    _contribute(deltas, requests, created=(lo, hi), resolved=(lo, hi))
    return deltas


def _windows() -> Iterator[tuple[date, date]]:
    ends = HITLRequest.objects.aggregate(
        first=Min("created_at"), last_created=Max("created_at"), last_resolved=Max("resolved_at")
    )
    stored = Rollup.objects.aggregate(first=Min("day"), last=Max("day"))
    firsts = [d for d in (ends["first"] and ends["first"].astimezone(UTC).date(), stored["first"]) if d]
    lasts = [
        d
        for d in (
            ends["last_created"] and ends["last_created"].astimezone(UTC).date(),
            ends["last_resolved"] and ends["last_resolved"].astimezone(UTC).date(),
            stored["last"],
        )
        if d
    ]
    if not firsts:
        return
    day, last = week_of(min(firsts)), max(lasts)
    while day <= last:
        yield day, day + timedelta(days=WINDOW_DAYS)
        day += timedelta(days=WINDOW_DAYS)


def _lock() -> None:
    """Writers wait for a rebuild (PostgreSQL: they would upsert into rows being replaced); SQLite's
    IMMEDIATE transaction already holds the database's write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Rollup._meta.db_table} IN EXCLUSIVE MODE")


def rebuild_rollups(progress: Any = None) -> int:
    """Replace every rollup by what the requests say, a window at a time (bounded memory), in one
    transaction that writers wait for. Returns the number of rollup rows written."""
    written = 0
    with transaction.atomic():
        _lock()
        with connection.cursor() as cursor:
            for model in (RollupTime, RollupAnswer, RollupApproval, Rollup):
                cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608 - a model's table
        for start, end in list(_windows()):
            deltas = _expected(start, end)
            apply(deltas)
            written += len(deltas.keys())
            if progress:
                progress(start, end, written)
    return written


def _stored(start: date, end: date) -> Deltas:
    """The rollups of the days [start, end) as Deltas, to compare with `_expected`."""
    deltas = Deltas()
    rollups = Rollup.objects.filter(day__gte=start, day__lt=end)
    key_fields = ("grain", "day", "deployment_id", "flow_name", "method_name", "reviewer")
    for row in rollups.values_list(*key_fields, *COUNTS):
        key: Key = (row[0], _as_date(row[1]), *row[2:6])  # type: ignore[assignment]
        deltas.counts[key].update({c: v for c, v in zip(COUNTS, row[6:], strict=True) if v})
    prefixed = [f"rollup__{f}" for f in key_fields]
    for *k, cell, n, low, high in RollupTime.objects.filter(rollup__in=rollups).values_list(
        *prefixed, "bucket", "n", "low", "high"
    ):
        deltas.times[((k[0], _as_date(k[1]), *k[2:]), cell)] = [n, low, high]  # type: ignore[index]
    for *k, human, outcome, source, n in RollupAnswer.objects.filter(rollup__in=rollups).values_list(
        *prefixed, "human", "outcome", "source", "n"
    ):
        deltas.answers[((k[0], _as_date(k[1]), *k[2:]), human, outcome, source)] += n  # type: ignore[index]
    for *k, approver, n, micros in RollupApproval.objects.filter(rollup__in=rollups).values_list(
        *prefixed, "approver", "n", "microseconds"
    ):
        deltas.approvals[((k[0], _as_date(k[1]), *k[2:]), approver)] = [n, micros]  # type: ignore[index]
    return deltas


def _normal(deltas: Deltas) -> dict[tuple[Any, ...], Any]:
    """Every non-zero figure of `deltas`, flat, so that two Deltas compare with `==`."""
    flat: dict[tuple[Any, ...], Any] = {}
    for key, counts in deltas.counts.items():
        flat.update({("count", *key, c): v for c, v in counts.items() if v})
    flat.update({("time", *key, cell): tuple(v) for (key, cell), v in deltas.times.items() if v[0]})
    flat.update({("answer", *key, h, o, s): n for (key, h, o, s), n in deltas.answers.items() if n})
    flat.update({("approval", *key, a): tuple(v) for (key, a), v in deltas.approvals.items() if any(v)})
    return flat


def check_rollups(limit: int = 50) -> list[str]:
    """The differences between the stored rollups and the requests (at most `limit` described); empty
    when they agree. One consistent snapshot (PostgreSQL: REPEATABLE READ)."""
    differences: list[str] = []
    nested = connection.in_atomic_block  # a caller's transaction (tests) already has its snapshot
    with transaction.atomic():
        if connection.vendor == "postgresql" and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for start, end in list(_windows()):
            expected, stored = _normal(_expected(start, end)), _normal(_stored(start, end))
            for key in sorted(set(expected) | set(stored), key=str):
                if expected.get(key) != stored.get(key) and len(differences) < limit:
                    differences.append(
                        f"{' '.join(str(part) for part in key)}: stored {stored.get(key)}, expected {expected.get(key)}"
                    )
                elif expected.get(key) != stored.get(key):
                    differences.append("…")
                    return differences
    return differences
