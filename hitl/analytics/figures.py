"""Every analytics figure, read from the rollups that the services keep (SPEC §19, hitl.services.rollups)
and, for the backlog, from the pending requests. No request row is ever loaded into Python: the
queries return one row per group, per period bucket or per histogram cell.

What each figure counts (the README's "Analytics" section repeats this):

- **Period**: `[since, until)` in UTC, whole days. A request belongs to the period's *created*
  figures by `created_at`, and to its *resolved* figures by `resolved_at` (when it left `pending`,
  the same instant as its Resolution row). The backlog is "now" and ignores the period. The rollups
  have a row per UTC day, per ISO week and per calendar month: a period reads its whole months, whole
  weeks in what is left at its edges, and days at the edges of those (per-period figures: days or weeks).
- **Reviewer**: the request's assignee (`assigned_to_email`, after any reassignment), so the backlog
  and the answers of a person line up. Who actually answered is in the audit log.
- **created**: requests created in the period. **resolved**: requests that left `pending` in the
  period, split by status: `responded` (a human answered), `auto_responded` (the default outcome
  fired), `timed_out`, `cancelled`.
- **Response time**: for human answers only (status `responded`) resolved in the period,
  `resolved_at − created_at` in whole seconds (each instant truncated to the second, so SQLite and
  PostgreSQL agree to the digit). Mean exact (a sum and a count); median and p90 by linear
  interpolation between the closest ranks (PostgreSQL's `percentile_cont`: position `1 + p·(n − 1)`),
  each rank read from a histogram with cells 2 % wide: within 1 % of the exact value, exact when a
  cell holds a single value (`percentiles` below).
- **SLA share**: `sla_met / sla_total`. `sla_total` counts requests with an SLA due time that were
  answered by a human, auto-responded or timed out in the period (a cancelled request needed no
  answer); `sla_met` those a human answered at or before `sla_due_at` (the test that sets
  `Resolution.answered_within_sla`). An auto-response or a timeout is a miss. `null` without SLAs.
- **Auto-response share**: `auto_responded / (responded + auto_responded + timed_out)`.
- **Decisions**: answers (`responded` + `auto_responded`) in the period per outcome, human and auto
  apart; `""` is an answer without an outcome (free-form feedback, text or choices answers).
- **Channels**: the same answers per source (`email`, `dashboard`, `api`, `telegram`, `slack`, `auto`).
- **Backlog**: pending requests now; `overdue` = pending and past the SLA due time (flagged by the
  sweeper or not yet); the oldest pending request's creation time and age.
- **Per period**: `created` per bucket of `created_at`, everything else per bucket of `resolved_at`;
  buckets are UTC days or ISO weeks (starting Monday; the first and last may be partial).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any, NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, F, Min, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Deployment
from hitl.analytics.filters import Filters, requests_for, rollups_for
from hitl.models import HITLRequest, Source, Status
from hitl.rollup_models import Grain, Rollup, RollupAnswer, RollupApproval, RollupTime
from hitl.services.rollups import ALL_FLOWS, ALL_METHODS, ALL_REVIEWERS, tiles, week_of

DECIDED = (Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT)
ANSWERED = (Status.RESPONDED, Status.AUTO_RESPONDED)
RESOLVED_STATUSES = (Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT, Status.CANCELLED)
CHANNELS = (Source.EMAIL, Source.DASHBOARD, Source.API, Source.TELEGRAM, Source.SLACK, Source.AUTO)
TIME_KEYS = ("answered", "response_time_mean", "response_time_median", "response_time_p90")
# Dimension → (rollup column, request column).
DIMENSIONS = {
    "deployment": ("deployment_id", "deployment_id"),
    "flow": ("flow_name", "flow_name"),
    "method": ("method_name", "method_name"),
    "reviewer": ("reviewer", "assigned_to_email"),
}
_GROUP = ("deployment_id", "flow_name", "method_name")
_COUNTS = ("created", *(str(s) for s in RESOLVED_STATUSES), "sla_total", "sla_met", "response_seconds")

Cells = list[tuple[int, int, int, int]]  # (bucket, n, low, high), sorted by bucket


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _day(value: Any) -> date:
    """A date, whatever shape the database returned it in."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _merge(into: dict[int, list[int]], bucket: int, n: int, low: int, high: int) -> None:
    known = into.get(bucket)
    if known is None:
        into[bucket] = [n, low, high]
    else:
        known[0], known[1], known[2] = known[0] + n, min(known[1], low), max(known[2], high)


def percentiles(cells: dict[int, list[int]], fractions: Iterable[float]) -> list[float | None]:
    """Percentiles of a response-time histogram by linear interpolation between the closest ranks
    (PostgreSQL's `percentile_cont`: position 1 + p·(n − 1)); a rank's value is the middle of its
    cell's least and greatest value: within 1 % (hitl.services.rollups), exact for one-value cells."""
    ordered = [cells[b] for b in sorted(cells) if cells[b][0] > 0]
    ends = list(accumulate(n for n, _, _ in ordered))
    if not ends:
        return [None for _ in fractions]

    def value(rank: int) -> float:  # 1-based
        n, low, high = ordered[bisect_left(ends, rank)]
        return (low + high) / 2

    found: list[float | None] = []
    for fraction in fractions:
        position = 1 + fraction * (ends[-1] - 1)
        below = int(position)
        result = value(below)
        if position > below:
            result += (position - below) * (value(below + 1) - result)
        found.append(result)
    return found


# The percentiles every figure reports, as exact ratios: SQL computes their ranks in integers (`_ranked`).
MEDIAN_P90 = ((1, 2), (9, 10))


class Ranks(NamedTuple):
    """A histogram's median and p90, already read from the cells holding their ranks (`_ranked`)."""

    median: float | None
    p90: float | None


def interpolated(total: int, value: Any) -> Ranks:
    """`percentiles` for (1/2, 9/10) of `total` ranks, with `value(rank)` reading a rank's cell: the
    position 1 + p·(total − 1) in integers (its floor and fraction), so SQL can select the same ranks."""
    found: list[float | None] = []
    for num, den in MEDIAN_P90:
        below, part = 1 + (total - 1) * num // den, (total - 1) * num % den
        result = value(below)
        if part:
            result += part / den * (value(below + 1) - result)
        found.append(result)
    return Ranks(*found)


class Analytics:
    """The figures for one principal's requests and rollups (already restricted and filtered) and one
    period. The counts and response times come from the rollups (SPEC §19), the backlog from the
    pending requests (a partial set, "now")."""

    def __init__(
        self,
        requests: QuerySet[HITLRequest],
        filters: Filters,
        now: datetime | None = None,
        *,
        rollups: QuerySet[Rollup],
    ) -> None:
        self.requests = requests.order_by()
        self.rollups = rollups.order_by()
        # Each figure reads the narrowest row set that answers it (issue 21). The rows per (flow, method)
        # serve the flow and method breakdowns, and every figure when a flow or method is the filter;
        # otherwise the rows of all flows and methods (one set per deployment) serve the rest. Figures
        # not split by reviewer read the rows that sum every reviewer, unless a reviewer is the filter;
        # per-reviewer figures read the reviewers' own rows.
        flows = self.rollups.exclude(flow_name=ALL_FLOWS)
        marginal = (
            flows
            if filters.flow or filters.method
            else self.rollups.filter(flow_name=ALL_FLOWS, method_name=ALL_METHODS)
        )
        self.per_reviewer = marginal.exclude(reviewer=ALL_REVIEWERS)
        self.totals = self.per_reviewer if filters.reviewer else marginal.filter(reviewer=ALL_REVIEWERS)
        self.flow_totals = (
            flows.exclude(reviewer=ALL_REVIEWERS) if filters.reviewer else flows.filter(reviewer=ALL_REVIEWERS)
        )
        self.filters = filters
        self.now = now or timezone.now()
        self._cache: dict[str, Any] = {}

    @classmethod
    def of(cls, principal: Any, filters: Filters, now: datetime | None = None) -> Analytics:
        """The figures `principal` may see (404/403 as `requests_for` decides)."""
        return cls(requests_for(principal, filters), filters, now, rollups=rollups_for(principal, filters))

    # --- building blocks ---------------------------------------------------------------------------

    def _spans(self, by_day: bool = False, months: bool = True) -> Q:
        """The rollup rows of the period: the coarsest that tile it exactly (`tiles`: whole months, then
        whole ISO weeks, then days at the edges); every day from DAY rows with `by_day`, no months
        without `months` (per-week buckets)."""
        first, end = self.filters.first_day, self.filters.last_day + timedelta(days=1)
        if by_day:
            return Q(grain=Grain.DAY, day__gte=first, day__lt=end)
        spans = Q()
        for grain, start, until in tiles(first, end, months=months):
            spans |= Q(grain=grain, day__gte=start, day__lt=until)
        return spans

    def _in_period(self, rows: str = "totals") -> QuerySet[Rollup]:
        """The period's rows of one set: "totals" (all flows and methods unless filtered; all reviewers
        unless filtered), "per_reviewer" or "flow_totals" (per flow and method)."""
        return getattr(self, rows).filter(self._spans())  # type: ignore[no-any-return]

    def _counts_by(self, column: str | None) -> list[dict[str, Any]]:
        """The period's counts per (deployment, flow, method) — one query over few rows that the summary
        and those three breakdowns sum — or per reviewer (`column` "reviewer", its own query)."""
        name, group = ("reviewer", ("reviewer",)) if column == "reviewer" else ("groups", _GROUP)
        if name not in self._cache:
            self._cache[name] = list(
                self._in_period("per_reviewer" if name == "reviewer" else "flow_totals")
                .values(*group)
                .annotate(**{c: Sum(c) for c in _COUNTS})
                .order_by()
            )
        return self._cache[name]  # type: ignore[no-any-return]

    def _backlog_by_group(self) -> list[dict[str, Any]]:
        """Pending requests now, per group (the pending set only)."""
        if "backlog" not in self._cache:
            pending = Q(status=Status.PENDING)
            self._cache["backlog"] = list(
                self.requests.filter(pending)
                .values(*(request_column for _, request_column in DIMENSIONS.values()))
                .annotate(
                    pending=Count("pk"),
                    overdue=Count("pk", filter=Q(overdue=True) | Q(sla_due_at__lt=self.now)),
                    oldest_pending_at=Min("created_at"),
                )
                .order_by()
            )
        return self._cache["backlog"]  # type: ignore[no-any-return]

    def _cells(self, rollups: QuerySet[Rollup], *keys: str) -> dict[Any, dict[int, list[int]]]:
        """{key: histogram} of the rollups' response times, grouped by `keys` (rollup columns).

        One join of the histogram cells to the selected rollup rows, which carry the key columns (the ORM's
        `rollup__in` would scan the rollups twice: a semi-join for the selection, a join for the keys),
        and the rows read as plain tuples: a year per reviewer is ~35,000 (reviewer, cell) rows at 250,000
        requests, and Django's per-row dicts and converters cost more than the query (issue 21)."""
        grouped: dict[Any, dict[int, list[int]]] = defaultdict(dict)
        grouping = self._grouped_cells(rollups, keys)
        if grouping is None:
            return grouped
        sql, params, columns = grouping
        width = len(keys)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns}, bucket, n, low, high FROM ({sql}) c", params)  # noqa: S608
            for row in cursor.fetchall():
                key = row[0] if width == 1 else row[:width]
                grouped[key][row[width]] = [row[width + 1], row[width + 2], row[width + 3]]
        return grouped

    @staticmethod
    def _grouped_cells(rollups: QuerySet[Rollup], keys: tuple[str, ...]) -> tuple[str, list[Any], str] | None:
        """(SQL, params, key columns) of the rollups' cells summed per (keys, bucket), with columns
        key_0…, bucket, n, low, high; None when the selection is empty by construction (`pk__in=[]`)."""
        names = [f"key_{i}" for i in range(len(keys))]
        selected = rollups.order_by().annotate(rollup_pk=F("pk"), **{n: F(k) for n, k in zip(names, keys, strict=True)})
        try:
            inner, params = selected.values("rollup_pk", *names).query.sql_with_params()
        except EmptyResultSet:
            return None
        columns = ", ".join(names)
        keyed = ", ".join(f"r.{n}" for n in names)
        sql = (
            f"SELECT {keyed}, t.bucket AS bucket, CAST(SUM(t.n) AS BIGINT) AS n, MIN(t.low) AS low, "  # noqa: S608 - names from the models
            f"MAX(t.high) AS high FROM {RollupTime._meta.db_table} t JOIN ({inner}) r ON t.rollup_id = r.rollup_pk "
            f"GROUP BY {keyed}, t.bucket"
        )
        return sql, list(params), columns

    def _ranked(self, rollups: QuerySet[Rollup], key: str) -> dict[Any, Ranks]:
        """{key: median and p90} of the rollups' response times grouped by one column, the ranks found in
        SQL: a running sum over each group's cells (window functions, SQLite ≥ 3.25 and PostgreSQL), and
        only the cells that hold the ranks of the median and p90 and the ranks after them come back (≤ 4
        a group instead of every cell: a year of 200 reviewers is ~35,000 cells, Python reading them
        costs as much as the query). The same ranks and interpolation as `percentiles` (`interpolated`)."""
        ranked: dict[Any, Ranks] = {}
        grouping = self._grouped_cells(rollups, (key,))
        if grouping is None:
            return ranked
        sql, params, _ = grouping
        ranks = [
            f"1 + (total - 1) * {num} / {den}" if step == 0 else f"2 + (total - 1) * {num} / {den}"
            for num, den in MEDIAN_P90
            for step in (0, 1)
        ]
        holds = " OR ".join(f"(upto - n < {rank} AND {rank} <= upto)" for rank in ranks)
        query = (
            "SELECT key_0, total, upto - n, upto, low, high FROM ("  # noqa: S608 - integers and names from here
            "SELECT key_0, n, low, high, "
            "CAST(SUM(n) OVER (PARTITION BY key_0 ORDER BY bucket) AS BIGINT) AS upto, "
            "CAST(SUM(n) OVER (PARTITION BY key_0) AS BIGINT) AS total "
            f"FROM ({sql}) c WHERE n > 0) w WHERE {holds}"
        )
        found: dict[Any, list[tuple[int, int, float]]] = defaultdict(list)
        totals: dict[Any, int] = {}
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            for group, total, before, upto, low, high in cursor.fetchall():
                totals[group] = total
                found[group].append((before, upto, (low + high) / 2))

        for group, total in totals.items():
            cells = found[group]

            def value(rank: int, cells: list[tuple[int, int, float]] = cells) -> float:
                return next(middle for before, upto, middle in cells if before < rank <= upto)

            ranked[group] = interpolated(total, value)
        return ranked

    def _cells_by(self, column: str | None) -> dict[Any, dict[int, list[int]]]:
        """The period's histograms per value of `column` (None: one histogram). Deployment, flow and
        method come from one query grouped by all three (few combinations × the cells), merged here;
        the reviewer (many) has its own."""
        if column == "reviewer":
            return self._ranked(self._in_period("per_reviewer"), "reviewer")  # type: ignore[return-value]
        if "combined" not in self._cache:
            self._cache["combined"] = self._cells(
                self._in_period("flow_totals"), "deployment_id", "flow_name", "method_name"
            )
        position = {None: None, "deployment_id": 0, "flow_name": 1, "method_name": 2}[column]
        projected: dict[Any, dict[int, list[int]]] = defaultdict(dict)
        for key, histogram in self._cache["combined"].items():
            merged = projected[() if position is None else key[position]]
            for bucket, (n, low, high) in histogram.items():
                _merge(merged, bucket, n, low, high)
        return projected

    @staticmethod
    def _sum(rows: Iterable[dict[str, Any]], columns: Iterable[str]) -> dict[str, Any]:
        total: dict[str, Any] = dict.fromkeys(columns, 0)
        for row in rows:
            for column in total:
                total[column] += row.get(column) or 0
        return total

    @staticmethod
    def _row(
        counts: dict[str, Any], cells: dict[int, list[int]] | Ranks | None, backlog: dict[str, Any] | None
    ) -> dict[str, Any]:
        """One row of figures from summed counts, a histogram and (for all but per-period rows) a backlog."""
        row: dict[str, Any] = {"created": int(counts.get("created") or 0)}
        statuses = {str(s): int(counts.get(str(s)) or 0) for s in RESOLVED_STATUSES}
        row["resolved"] = sum(statuses.values())
        row.update(statuses)
        row["sla_total"], row["sla_met"] = int(counts.get("sla_total") or 0), int(counts.get("sla_met") or 0)
        if backlog is not None:
            oldest = backlog.get("oldest_pending_at")
            row["pending"], row["overdue"] = int(backlog.get("pending") or 0), int(backlog.get("overdue") or 0)
            row["oldest_pending_at"] = oldest.isoformat() if isinstance(oldest, datetime) else oldest
        answered = row[str(Status.RESPONDED)]
        median, p90 = cells if isinstance(cells, Ranks) else percentiles(cells or {}, (0.5, 0.9))
        row["answered"] = answered
        row["response_time_mean"] = _seconds(counts.get("response_seconds", 0) / answered) if answered else None
        row["response_time_median"], row["response_time_p90"] = _seconds(median), _seconds(p90)
        decided = sum(row[str(s)] for s in DECIDED)
        row["sla_share"] = _share(row["sla_met"], row["sla_total"])
        row["auto_response_share"] = _share(row[str(Status.AUTO_RESPONDED)], decided)
        return row

    @staticmethod
    def _backlog(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
        rows = list(rows)
        oldest = [r["oldest_pending_at"] for r in rows if r["oldest_pending_at"] is not None]
        return {
            "pending": sum(r["pending"] for r in rows),
            "overdue": sum(r["overdue"] for r in rows),
            "oldest_pending_at": min(oldest) if oldest else None,
        }

    # --- figures -------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        counts = self._sum(self._counts_by(None), _COUNTS)
        backlog = self._backlog(self._backlog_by_group())
        merged = self._cells_by(None).get((), {})
        oldest = backlog["oldest_pending_at"]
        row = self._row(counts, merged, backlog)
        row["oldest_pending_age_seconds"] = int((self.now - oldest).total_seconds()) if oldest else None
        return row

    def by_dimension(self, dimension: str) -> list[dict[str, Any]]:
        """One row per deployment / flow / method / reviewer, busiest first."""
        column, request_column = DIMENSIONS[dimension]
        counts: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for group in self._counts_by(column):
            counts[group[column]].append(group)
        backlog: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for group in self._backlog_by_group():
            backlog[group[request_column]].append(group)
        cells = self._cells_by(column)
        labels: dict[Any, str] = {}
        if dimension == "deployment":
            labels = dict(Deployment.objects.filter(pk__in=set(counts) | set(backlog)).values_list("pk", "name"))
        rows = []
        for key in set(counts) | set(backlog):
            summed = self._sum(counts.get(key, ()), _COUNTS)
            row = self._row(summed, cells.get(key), self._backlog(backlog.get(key, ())))
            if not (row["created"] or row["resolved"] or row["pending"]):
                continue  # a reviewer whose only request was reassigned away
            rows.append({"key": key, "label": labels.get(key) or key, **row})
        rows.sort(key=lambda r: (-(r["created"] + r["resolved"] + r["pending"]), str(r["label"])))
        return rows

    def buckets(self) -> list[date]:
        first, last = self.filters.first_day, self.filters.last_day
        step = 1
        if self.filters.bucket == "week":
            first, step = first - timedelta(days=first.weekday()), 7
        return [first + timedelta(days=i) for i in range(0, (last - first).days + 1, step)]

    def by_period(self) -> list[dict[str, Any]]:
        """Volume (created vs resolved) and the resolved figures per day or ISO week, gaps as zeros."""
        daily = self.filters.bucket == "day"
        rollups = self.totals.filter(self._spans(by_day=daily, months=False))

        def bucket_of(grain: str, day: Any) -> date:
            return _day(day) if daily or grain == Grain.WEEK else week_of(_day(day))

        counts: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for row in rollups.values("grain", "day").annotate(**{c: Sum(c) for c in _COUNTS}).order_by():
            counts[bucket_of(row["grain"], row["day"])].append(dict(row))
        cells: dict[date, Any] = defaultdict(dict)
        if daily:  # one histogram per day row: its ranks in SQL
            cells.update({_day(day): ranks for day, ranks in self._ranked(rollups, "day").items()})
        else:  # weeks from week rows and the days at the period's edges
            for (grain, day), histogram in self._cells(rollups, "grain", "day").items():
                merged = cells[bucket_of(grain, day)]
                for bucket, (n, low, high) in histogram.items():
                    _merge(merged, bucket, n, low, high)
        return [
            {"period": day.isoformat(), **self._row(self._sum(counts.get(day, ()), _COUNTS), cells.get(day), None)}
            for day in self.buckets()
        ]

    def _answers(self) -> list[tuple[str, str, bool, int]]:
        """(outcome, source, human, count) of the answers resolved in the period: one query that both
        `decisions()` and `channels()` read."""
        if "answers" not in self._cache:
            self._cache["answers"] = [
                (row["outcome"], row["source"], row["human"], row["total"])
                for row in RollupAnswer.objects.filter(rollup__in=self._in_period().values("pk"))
                .values("outcome", "source", "human")
                .annotate(total=Sum("n"))
                .order_by()
                if row["total"]
            ]
        return self._cache["answers"]  # type: ignore[no-any-return]

    def decisions(self) -> list[dict[str, Any]]:
        by_outcome: dict[str, dict[str, int]] = {}
        for outcome, _, human, n in self._answers():
            row = by_outcome.setdefault(outcome, {"human": 0, "auto": 0})
            row["human" if human else "auto"] += n
        total = sum(r["human"] + r["auto"] for r in by_outcome.values())
        ranked = sorted(by_outcome.items(), key=lambda item: (-(item[1]["human"] + item[1]["auto"]), item[0]))
        return [
            {"outcome": outcome, **r, "total": r["human"] + r["auto"], "share": _share(r["human"] + r["auto"], total)}
            for outcome, r in ranked
        ]

    def by_approver(self) -> list[dict[str, Any]]:
        """Several approvers (SPEC §13): decisions per approver of the requests created in the period,
        with each approver's mean response time (decided − created)."""
        rows = (
            RollupApproval.objects.filter(rollup__in=self._in_period().values("pk"))
            .values("approver")
            .annotate(decisions=Sum("n"), took=Sum("microseconds"))
            .filter(decisions__gt=0)
            .order_by("-decisions", "approver")
        )
        return [
            {
                "approver": row["approver"],
                "decisions": row["decisions"],
                "mean_response_seconds": _seconds(row["took"] / row["decisions"] / 1_000_000),
            }
            for row in rows
        ]

    def form_fields(self) -> list[dict[str, Any]]:
        """Typed forms (SPEC §14): answers per enum and yes/no field (hitl.analytics.form_fields)."""
        from hitl.analytics.form_fields import form_field_distributions

        in_period = Q(resolved_at__gte=self.filters.since, resolved_at__lt=self.filters.until)
        return form_field_distributions(self.requests, in_period)

    def channels(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for _, source, _, n in self._answers():
            counts[source] = counts.get(source, 0) + n
        total = sum(counts.values())
        sources: Iterable[str] = [*CHANNELS, *sorted(set(counts) - set(CHANNELS))]
        return [{"source": s, "count": counts.get(s, 0), "share": _share(counts.get(s, 0), total)} for s in sources]

    def report(self) -> dict[str, Any]:
        """Everything, as the API returns it (and the page and the CSV files show it)."""
        return {
            "period": {
                "since": self.filters.first_day.isoformat(),
                "until": self.filters.last_day.isoformat(),
                "bucket": self.filters.bucket,
                "timezone": "UTC",
            },
            "filters": self.filters.params(),
            "generated_at": self.now.isoformat(),
            "summary": self.summary(),
            "by_period": self.by_period(),
            "decisions": self.decisions(),
            "channels": self.channels(),
            "by_approver": self.by_approver(),
            "form_fields": self.form_fields(),
            **{f"by_{dimension}": self.by_dimension(dimension) for dimension in DIMENSIONS},
        }
