"""The analytics figures computed exactly from the requests, as hitl/analytics/figures.py did before the
rollups (SPEC §19): the tests' oracle. Aggregates, conditional counts and window functions over the
request rows; percentiles exact (PostgreSQL's `percentile_cont`, the same interpolation by hand on
SQLite).

What each figure counts (the README's "Analytics" section repeats this):

- **Period**: `[since, until)` in UTC, whole days. A request belongs to the period's *created*
  figures by `created_at`, and to its *resolved* figures by `resolved_at` (when it left `pending`,
  the same instant as its Resolution row). The backlog is "now" and ignores the period.
- **Reviewer**: the request's assignee (`assigned_to_email`, after any reassignment), so the backlog
  and the answers of a person line up. Who actually answered is in the audit log.
- **created**: requests created in the period. **resolved**: requests that left `pending` in the
  period, split by status: `responded` (a human answered), `auto_responded` (the default outcome
  fired), `timed_out`, `cancelled`.
- **Response time**: for human answers only (status `responded`) resolved in the period,
  `resolved_at − created_at` in whole seconds (each instant truncated to the second, so SQLite and
  PostgreSQL agree to the digit). Mean; median and p90 by linear interpolation between the closest
  ranks (PostgreSQL's `percentile_cont`: position `1 + p·(n − 1)` in the sorted values), computed
  with `ROW_NUMBER()`/`COUNT() OVER` because SQLite has no percentile function.
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

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Aggregate, Avg, Count, Expression, F, FloatField, Func, Min, Q, QuerySet, Value
from django.db.models.functions import Coalesce, TruncDate, TruncWeek
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from hitl.analytics.filters import Filters
from hitl.models import HITLRequest, Source, Status

DECIDED = (Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT)
ANSWERED = (Status.RESPONDED, Status.AUTO_RESPONDED)
RESOLVED_STATUSES = (Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT, Status.CANCELLED)
CHANNELS = (Source.EMAIL, Source.DASHBOARD, Source.API, Source.TELEGRAM, Source.SLACK, Source.AUTO)
TIME_KEYS = ("answered", "response_time_mean", "response_time_median", "response_time_p90")
DIMENSIONS = {
    "deployment": "deployment_id",
    "flow": "flow_name",
    "method": "method_name",
    "reviewer": "assigned_to_email",
}


class WholeSecondsBetween(Func):
    """`end − start` in whole seconds, each instant truncated to the second, as a float.

    Truncating first makes both databases return the same number: SQLite's date functions keep only
    milliseconds, PostgreSQL keeps microseconds.
    """

    arity = 2

    def __init__(self, start: str, end: str) -> None:
        super().__init__(F(start), F(end), output_field=FloatField())

    def _compiled(self, compiler: SQLCompiler) -> tuple[str, str, tuple[Any, ...]]:
        start_sql, start_params = compiler.compile(self.source_expressions[0])
        end_sql, end_params = compiler.compile(self.source_expressions[1])
        return start_sql, end_sql, (*end_params, *start_params)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        start, end, params = self._compiled(compiler)
        return f"(CAST(strftime('%%s', {end}) AS REAL) - CAST(strftime('%%s', {start}) AS REAL))", params

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        start, end, params = self._compiled(compiler)
        seconds = f"EXTRACT(EPOCH FROM (date_trunc('second', {end}) - date_trunc('second', {start})))"
        return f"CAST({seconds} AS DOUBLE PRECISION)", params

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        raise NotImplementedError(f"analytics are written for SQLite and PostgreSQL, not {connection.vendor}")


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(p) WITHIN GROUP (ORDER BY expr)`: the same linear interpolation
    that `_RESPONSE_TIMES_SQL` computes by hand for SQLite, as an aggregate that shares its query."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def _interpolated(fraction: str) -> str:
    # Linear interpolation between the ranks around 1 + p·(n − 1): each value weighs 1 − its distance
    # from that position (only the one or two nearest ranks weigh more than 0).
    position = f"(1 + {fraction} * (n - 1))"
    return f"SUM(CASE WHEN ABS(rn - {position}) < 1 THEN secs * (1 - ABS(rn - {position})) ELSE 0 END)"


# `inner` is SQL compiled by the ORM (with its own parameters); the fractions are constants here.
_RESPONSE_TIMES_SQL = (
    "SELECT k, COUNT(*), AVG(secs), {median}, {p90} FROM ("
    "SELECT k, secs, ROW_NUMBER() OVER (PARTITION BY k ORDER BY secs) AS rn, "
    "COUNT(*) OVER (PARTITION BY k) AS n FROM ({inner}) base"
    ") ranked GROUP BY k"
)


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _day(value: Any) -> date:
    """A bucket key as a date, whatever shape the database returned it in."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class ExactAnalytics:
    """The figures for one queryset of requests (already restricted and filtered) and one period."""

    def __init__(self, requests: QuerySet[HITLRequest], filters: Filters, now: datetime | None = None) -> None:
        self.requests = requests.order_by()
        self.filters = filters
        self.now = now or timezone.now()
        self.in_created = Q(created_at__gte=filters.since, created_at__lt=filters.until)
        self.in_resolved = Q(resolved_at__gte=filters.since, resolved_at__lt=filters.until)
        self.pending = Q(status=Status.PENDING)
        # On PostgreSQL the response times are aggregates in the same query as the counts (one pass over
        # the rows instead of two); SQLite has no percentile aggregate, so it runs `response_times()`.
        self.single_pass = connections[self.requests.db].vendor == "postgresql"

    # --- building blocks ---------------------------------------------------------------------------

    def _resolved_counts(self) -> dict[str, Any]:
        resolved = self.in_resolved
        return {
            "resolved": Count("pk", filter=resolved),
            **{str(status): Count("pk", filter=resolved & Q(status=status)) for status in RESOLVED_STATUSES},
            "sla_total": Count("pk", filter=resolved & Q(status__in=DECIDED, sla_due_at__isnull=False)),
            "sla_met": Count(
                "pk",
                filter=resolved
                & Q(status=Status.RESPONDED, sla_due_at__isnull=False, resolved_at__lte=F("sla_due_at")),
            ),
        }

    def _all_counts(self) -> dict[str, Any]:
        return {
            "created": Count("pk", filter=self.in_created),
            **self._resolved_counts(),
            "pending": Count("pk", filter=self.pending),
            "overdue": Count("pk", filter=self.pending & (Q(overdue=True) | Q(sla_due_at__lt=self.now))),
            "oldest_pending_at": Min("created_at", filter=self.pending),
        }

    def _time_aggregates(self) -> dict[str, Any]:
        """The response-time figures as aggregates (PostgreSQL), keyed as `response_times()` returns them."""
        if not self.single_pass:
            return {}
        answered = self.in_resolved & Q(status=Status.RESPONDED)
        secs = WholeSecondsBetween("created_at", "resolved_at")
        return {
            "answered": Count("pk", filter=answered),
            "response_time_mean": Avg(secs, filter=answered),
            "response_time_median": PercentileCont(secs, 0.5, filter=answered),
            "response_time_p90": PercentileCont(secs, 0.9, filter=answered),
        }

    @staticmethod
    def _split_times(counts: dict[str, Any]) -> dict[str, Any]:
        """Take the response-time figures out of a row of single-pass aggregates (rounded as SQLite's)."""
        times = {key: counts.pop(key) for key in TIME_KEYS}
        times["answered"] = int(times["answered"] or 0)
        for key in TIME_KEYS[1:]:
            times[key] = _seconds(times[key])
        return times

    def _active(self) -> QuerySet[HITLRequest]:
        """Requests that count anywhere: created or resolved in the period, or pending now."""
        return self.requests.filter(self.in_created | self.in_resolved | self.pending)

    def response_times(self, key: Expression | F | None = None) -> dict[Any, dict[str, Any]]:
        """{group key: count, mean, median, p90} of human response times, in one query."""
        answered = self.requests.filter(self.in_resolved, status=Status.RESPONDED)
        inner = answered.annotate(
            k=key if key is not None else Value(0), secs=WholeSecondsBetween("created_at", "resolved_at")
        )
        inner_sql, params = inner.values("k", "secs").query.sql_with_params()
        sql = _RESPONSE_TIMES_SQL.format(median=_interpolated("0.5"), p90=_interpolated("0.9"), inner=inner_sql)
        with connections[self.requests.db].cursor() as cursor:
            cursor.execute(sql, list(params))
            rows = cursor.fetchall()
        return {
            k: {
                "answered": int(count),
                "response_time_mean": _seconds(mean),
                "response_time_median": _seconds(median),
                "response_time_p90": _seconds(p90),
            }
            for k, count, mean, median, p90 in rows
        }

    @staticmethod
    def _row(counts: dict[str, Any], times: dict[str, Any] | None) -> dict[str, Any]:
        decided = sum(counts.get(str(s), 0) for s in DECIDED)
        row = {
            **counts,
            **(
                times
                or {"answered": 0, "response_time_mean": None, "response_time_median": None, "response_time_p90": None}
            ),
            "sla_share": _share(counts["sla_met"], counts["sla_total"]),
            "auto_response_share": _share(counts[str(Status.AUTO_RESPONDED)], decided),
        }
        if isinstance(row.get("oldest_pending_at"), datetime):
            row["oldest_pending_at"] = row["oldest_pending_at"].isoformat()
        return row

    # --- figures -------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        counts = self._active().aggregate(**self._all_counts(), **self._time_aggregates())
        oldest = counts["oldest_pending_at"]
        times = self._split_times(counts) if self.single_pass else self.response_times().get(0)
        row = self._row(counts, times)
        row["oldest_pending_age_seconds"] = int((self.now - oldest).total_seconds()) if oldest else None
        return row

    def by_dimension(self, dimension: str) -> list[dict[str, Any]]:
        """One row per deployment / flow / method / reviewer, busiest first."""
        field = DIMENSIONS[dimension]
        labels: dict[str, Any] = {"label": F("deployment__name")} if dimension == "deployment" else {}
        grouped = (
            self._active()
            .annotate(k=F(field))
            .values("k", **labels)
            .annotate(**self._all_counts(), **self._time_aggregates())
        )
        times = {} if self.single_pass else self.response_times(F(field))
        rows = []
        for values in grouped:
            counts: dict[str, Any] = dict(values)
            key = counts.pop("k")
            label = counts.pop("label", None) or key
            row_times = self._split_times(counts) if self.single_pass else times.get(key)
            rows.append({"key": key, "label": label, **self._row(counts, row_times)})
        rows.sort(key=lambda r: (-(r["created"] + r["resolved"] + r["pending"]), str(r["label"])))
        return rows

    def _bucket(self, field: str) -> Expression:
        # UTC like the period's bounds, whatever TIME_ZONE says.
        return TruncDate(field, tzinfo=UTC) if self.filters.bucket == "day" else TruncWeek(field, tzinfo=UTC)

    def buckets(self) -> list[date]:
        first, last = self.filters.first_day, self.filters.last_day
        step = 1
        if self.filters.bucket == "week":
            first, step = first - timedelta(days=first.weekday()), 7
        return [first + timedelta(days=i) for i in range(0, (last - first).days + 1, step)]

    def by_period(self) -> list[dict[str, Any]]:
        """Volume (created vs resolved) and the resolved figures per day or ISO week, gaps as zeros."""
        created = {
            _day(k): n
            for k, n in self.requests.filter(self.in_created)
            .annotate(k=self._bucket("created_at"))
            .values("k")
            .annotate(n=Count("pk"))
            .values_list("k", "n")
        }
        resolved: dict[date, dict[str, Any]] = {}
        times: dict[date, dict[str, Any]] = {}
        for values in (
            self.requests.filter(self.in_resolved)
            .annotate(k=self._bucket("resolved_at"))
            .values("k")
            .annotate(**self._resolved_counts(), **self._time_aggregates())
        ):
            counts: dict[str, Any] = dict(values)
            day = _day(counts.pop("k"))
            if self.single_pass:
                times[day] = self._split_times(counts)
            resolved[day] = counts
        if not self.single_pass:
            times = {_day(k): v for k, v in self.response_times(self._bucket("resolved_at")).items()}
        empty = {"resolved": 0, **{str(s): 0 for s in RESOLVED_STATUSES}, "sla_total": 0, "sla_met": 0}
        return [
            {
                "period": day.isoformat(),
                **self._row({"created": created.get(day, 0), **resolved.get(day, empty)}, times.get(day)),
            }
            for day in self.buckets()
        ]

    def _answers(self) -> list[tuple[str, str, str, int]]:
        """(outcome, source, status, count) of the answers resolved in the period: one query that both
        `decisions()` and `channels()` read."""
        if not hasattr(self, "_answers_cache"):
            self._answers_cache = [
                (row["outcome"], row["source"], row["status"], row["n"])
                for row in self.requests.filter(self.in_resolved, status__in=ANSWERED)
                .values("status", outcome=Coalesce(F("resolution__outcome"), Value("")), source=F("resolution__source"))
                .annotate(n=Count("pk"))
            ]
        return self._answers_cache

    def decisions(self) -> list[dict[str, Any]]:
        by_outcome: dict[str, dict[str, int]] = {}
        for outcome, _, status, n in self._answers():
            row = by_outcome.setdefault(outcome, {"human": 0, "auto": 0})
            row["human" if status == Status.RESPONDED else "auto"] += n
        total = sum(r["human"] + r["auto"] for r in by_outcome.values())
        ranked = sorted(by_outcome.items(), key=lambda item: (-(item[1]["human"] + item[1]["auto"]), item[0]))
        return [
            {"outcome": outcome, **r, "total": r["human"] + r["auto"], "share": _share(r["human"] + r["auto"], total)}
            for outcome, r in ranked
        ]

    def by_approver(self) -> list[dict[str, Any]]:
        """Several approvers (SPEC §13): decisions per approver of the requests created in the period,
        with each approver's own response time (decided − created), in SQL."""
        from django.db.models import Avg, DurationField, ExpressionWrapper

        from hitl.models import Decision

        took = ExpressionWrapper(F("decided_at") - F("request__created_at"), output_field=DurationField())
        rows = (
            Decision.objects.filter(request__in=self.requests.filter(self.in_created).values("pk"))
            .order_by()
            .values("approver")
            .annotate(decisions=Count("pk"), mean=Avg(took))
            .order_by("-decisions", "approver")
        )
        return [
            {
                "approver": row["approver"],
                "decisions": row["decisions"],
                "mean_response_seconds": _seconds(row["mean"].total_seconds()) if row["mean"] is not None else None,
            }
            for row in rows
        ]

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
            **{f"by_{dimension}": self.by_dimension(dimension) for dimension in DIMENSIONS},
            "form_fields": self.form_fields(),
        }

    def form_fields(self) -> list[dict[str, Any]]:
        """Read from the requests in both implementations (not rolled up): the same call."""
        from django.db.models import Q

        from hitl.analytics.form_fields import form_field_distributions

        in_period = Q(resolved_at__gte=self.filters.since, resolved_at__lt=self.filters.until)
        return form_field_distributions(self.requests, in_period)
