"""The analytics rollups (SPEC §19), kept by the services in the same transaction as what they count.

Every write that changes a figure calls one function here, after its own compare-and-set has won:
`count_created` (create), `count_resolved` / `count_resolved_many` (every way a request leaves pending),
`count_reassigned` (the reviewer changed: the request's `created` and its decisions move with it) and
`count_decision` (an approver's decision, SPEC §13). Each turns the change into `Deltas` and applies
them with `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` (SQLite ≥ 3.35 and PostgreSQL both
have it, with RETURNING), several VALUES rows a statement, rows sorted by key so that concurrent writers
lock them in the same order. On PostgreSQL a change is one statement whatever it touches: the rollup
rows' upsert is a data-modifying CTE whose RETURNING ids the histogram, answer and approval upserts join
(issue 21); SQLite has no INSERT in a CTE, so there it is one statement per table touched. Called last
in each transaction, so the rollup row's lock is held only until COMMIT.

A change counts in its UTC day, its ISO week and its calendar month, each for its reviewer and for all
reviewers, each for its (flow, method) and for all flows and methods of its deployment (twelve rows,
written in the same statement): a period reads the coarsest rows that tile it exactly (`tiles`), and a
figure the narrowest row set that answers its filters (`hitl.analytics.figures`).

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
# The flow and method of the marginal rows that sum every flow and method of a deployment (issue 21):
# figures without a flow or method filter (the totals, per deployment, per reviewer, per period) read
# these, one row set per deployment instead of one per (deployment, flow, method). Not a name a request
# can have: `validate_request_input` refuses it, migration 0022 renamed any older one.
ALL_FLOWS = ALL_METHODS = "*"


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


def month_of(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def tiles(first: date, end: date, months: bool = True) -> list[tuple[str, date, date]]:
    """The days [first, end) as (grain, from, until) ranges of rollup rows that cover each day exactly
    once, coarsest first: whole calendar months (unless `months` is false), whole ISO weeks in what is
    left at each edge, and days at the edges of those. A year is 12 month rows per key, not 52 or 365."""
    if first >= end:
        return []
    if months:
        months_from, months_until = (first if first.day == 1 else _next_month(first)), month_of(end)
        if months_from < months_until:
            return [
                *tiles(first, months_from, months=False),
                (Grain.MONTH.value, months_from, months_until),
                *tiles(months_until, end, months=False),
            ]
    weeks_from, weeks_until = first + timedelta(days=(7 - first.weekday()) % 7), week_of(end)
    if weeks_from >= weeks_until:
        return [(Grain.DAY.value, first, end)]
    return [
        *([(Grain.DAY.value, first, weeks_from)] if first < weeks_from else []),
        (Grain.WEEK.value, weeks_from, weeks_until),
        *([(Grain.DAY.value, weeks_until, end)] if weeks_until < end else []),
    ]


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
    """The rows a change counts in: its day, week and month, for its flow and method and for all of
    them, for its reviewer and for all reviewers (twelve rows)."""
    day = when.astimezone(UTC).date()
    return tuple(
        (grain, start, facts.deployment_id, flow, method, reviewer)
        for flow, method in ((facts.flow_name, facts.method_name), (ALL_FLOWS, ALL_METHODS))
        for reviewer in (facts.reviewer, ALL_REVIEWERS)
        for grain, start in (
            (Grain.DAY.value, day),
            (Grain.WEEK.value, week_of(day)),
            (Grain.MONTH.value, month_of(day)),
        )
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

    def merge(self, other: Deltas) -> None:
        """Add `other` (counts and sums add, histogram cells take the least low and greatest high)."""
        for key, counts in other.counts.items():
            for column, n in counts.items():
                self.counts[key][column] += n
        for cell, (n, low, high) in other.times.items():
            known = self.times.get(cell)
            self.times[cell] = (
                [n, low, high] if known is None else [known[0] + n, min(known[1], low), max(known[2], high)]
            )
        for answer, n in other.answers.items():
            self.answers[answer] += n
        for approval, (n, micros) in other.approvals.items():
            known = self.approvals.setdefault(approval, [0, 0])
            known[0], known[1] = known[0] + n, known[1] + micros

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


KEY_COLUMNS = ["grain", "day", "deployment_id", "flow_name", "method_name", "reviewer"]


class _Child(NamedTuple):
    """The upsert of one child table: its columns after `rollup_id`, and its rows by rollup key."""

    model: type[Any]
    columns: list[str]
    conflict: list[str]  # after rollup_id
    updates: dict[str, str]
    rows: list[tuple[Key, tuple[Any, ...]]]


def _children(deltas: Deltas) -> list[_Child]:
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    children = [
        _Child(
            RollupTime,
            ["bucket", "n", "low", "high"],
            ["bucket"],
            {
                "n": _added("n"),
                "low": f"{least}({{t}}.low, excluded.low)",
                "high": f"{greatest}({{t}}.high, excluded.high)",
            },
            [(key, (cell, *values)) for (key, cell), values in deltas.times.items()],
        ),
        _Child(
            RollupAnswer,
            ["human", "outcome", "source", "n"],
            ["human", "outcome", "source"],
            {"n": _added("n")},
            [(key, (human, outcome, source, n)) for (key, human, outcome, source), n in deltas.answers.items() if n],
        ),
        _Child(
            RollupApproval,
            ["approver", "n", "microseconds"],
            ["approver"],
            {"n": _added("n"), "microseconds": _added("microseconds")},
            [(key, (approver, *values)) for (key, approver), values in deltas.approvals.items()],
        ),
    ]
    return [child for child in children if child.rows]


def _sets(model: type[Any], updates: dict[str, str]) -> str:
    return ", ".join(
        f"{column} = {expression.format(t=model._meta.db_table)}" for column, expression in updates.items()
    )


def _db_type(model: type[Any], column: str) -> str:
    return next(f for f in model._meta.concrete_fields if f.column == column).cast_db_type(connection)


def _apply_in_one_statement(rows: list[Any], children: list[_Child]) -> None:
    """PostgreSQL: the rollup rows' upsert as a data-modifying CTE, and each child's upsert joining its
    RETURNING ids by key — one statement, one round trip. Every CTE runs to completion whether or not
    the outer SELECT reads it; the child rows are typed with CASTs, as VALUES outside an INSERT are not."""
    table, keys = Rollup._meta.db_table, ", ".join(KEY_COLUMNS)
    columns = [*KEY_COLUMNS, *COUNTS]
    marks = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    ctes = [
        f"r AS (INSERT INTO {table} ({', '.join(columns)}) VALUES {marks} "  # noqa: S608 - names from the models
        f"ON CONFLICT ({keys}) DO UPDATE SET {_sets(Rollup, {c: _added(c) for c in COUNTS})} RETURNING id, {keys})"
    ]
    params: list[Any] = [value for row in rows for value in row]
    for index, child in enumerate(children):
        types = [_db_type(Rollup, c) for c in KEY_COLUMNS] + [_db_type(child.model, c) for c in child.columns]
        mark = "(" + ", ".join(f"CAST(%s AS {kind})" for kind in types) + ")"
        named = ", ".join(f"v.{c}" for c in child.columns)
        ctes.append(
            f"c{index} AS (INSERT INTO {child.model._meta.db_table} (rollup_id, {', '.join(child.columns)}) "  # noqa: S608
            f"SELECT r.id, {named} FROM (VALUES {', '.join([mark] * len(child.rows))}) "
            f"AS v ({', '.join([*KEY_COLUMNS, *child.columns])}) JOIN r USING ({keys}) "
            f"ORDER BY r.id, {', '.join(f'v.{c}' for c in child.conflict)} "
            f"ON CONFLICT (rollup_id, {', '.join(child.conflict)}) DO UPDATE SET {_sets(child.model, child.updates)})"
        )
        params += [value for (grain, day, *dims), values in child.rows for value in (grain, day, *dims, *values)]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT count(*) FROM r", params)  # noqa: S608 - as above


def apply(deltas: Deltas) -> None:
    """Write `deltas`: one statement on PostgreSQL (unless a rebuild's thousands of rows), else one per
    table touched (per BATCH rows)."""
    keys = deltas.keys()
    if not keys:
        return
    rows = [
        (grain, _day_value(day), *dims, *(deltas.counts.get(key, {}).get(c, 0) for c in COUNTS))
        for key in keys
        for grain, day, *dims in [key]
    ]
    children = _children(deltas)
    if connection.vendor == "postgresql" and max([len(rows), *(len(c.rows) for c in children)]) <= BATCH:
        _apply_in_one_statement(rows, children)
        return
    returned = _upsert(Rollup, [*KEY_COLUMNS, *COUNTS], KEY_COLUMNS, {c: _added(c) for c in COUNTS}, rows)
    ids = {(grain, _as_date(day), *dims): pk for pk, grain, day, *dims in returned}
    for child in children:
        _upsert(
            child.model,
            ["rollup_id", *child.columns],
            ["rollup_id", *child.conflict],
            child.updates,
            sorted((ids[key], *values) for key, values in child.rows),
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


def _stored(start: date, end: date, months: bool = False) -> Deltas:
    """The DAY and WEEK rollups of the days [start, end) as Deltas (or, with `months`, every MONTH
    rollup), to compare with `_expected`."""
    deltas = Deltas()
    if months:
        rollups = Rollup.objects.filter(grain=Grain.MONTH)
    else:
        rollups = Rollup.objects.filter(day__gte=start, day__lt=end).exclude(grain=Grain.MONTH)
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


def _split_months(deltas: Deltas) -> Deltas:
    """Take the MONTH rows out of `deltas` (a month straddles windows): returned, removed from it."""
    months = Deltas()
    for name in ("counts", "times", "answers", "approvals"):
        mine, theirs = getattr(deltas, name), getattr(months, name)
        for key in [k for k in mine if (k if name == "counts" else k[0])[0] == Grain.MONTH]:
            theirs[key] = mine.pop(key)
    return months


def _differences(expected: Deltas, stored: Deltas, differences: list[str], limit: int) -> bool:
    """Append to `differences`; False once more than `limit` are found."""
    wanted, have = _normal(expected), _normal(stored)
    for key in sorted(set(wanted) | set(have), key=str):
        if wanted.get(key) != have.get(key):
            if len(differences) >= limit:
                differences.append("…")
                return False
            differences.append(
                f"{' '.join(str(part) for part in key)}: stored {have.get(key)}, expected {wanted.get(key)}"
            )
    return True


def check_rollups(limit: int = 50) -> list[str]:
    """The differences between the stored rollups and the requests (at most `limit` described); empty
    when they agree. One consistent snapshot (PostgreSQL: REPEATABLE READ). Days and weeks are compared
    window by window; months straddle windows, so their expected rows are summed over all windows first
    (a few rows per month and key)."""
    differences: list[str] = []
    months = Deltas()
    nested = connection.in_atomic_block  # a caller's transaction (tests) already has its snapshot
    with transaction.atomic():
        if connection.vendor == "postgresql" and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for start, end in list(_windows()):
            expected = _expected(start, end)
            months.merge(_split_months(expected))
            if not _differences(expected, _stored(start, end), differences, limit):
                return differences
        _differences(months, _stored(date.min, date.max, months=True), differences, limit)
    return differences
