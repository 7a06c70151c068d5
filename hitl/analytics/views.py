"""The analytics page and its CSV downloads, for users with `manage_human_feedback` (SPEC §9)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.lib.access import deployment_scope
from accounts.models import Deployment
from hitl.analytics.figures import Analytics
from hitl.analytics.filters import (
    AnalyticsFilterForm,
    Filters,
    analysable_deployments,
    analytics_action,
    resolve_filters,
)
from hitl.analytics.tables import TABLES, build_table, build_tables, summary_cards, table_rows
from hitl.models import Grain, Rollup
from hitl.services.rollups import ALL_FLOWS, ALL_METHODS, ALL_REVIEWERS, week_of

PAGE_ROWS = 50
SUGGESTIONS = 200
SUGGESTION_DAYS = 90


def _filters(request: HttpRequest) -> tuple[AnalyticsFilterForm, Filters]:
    form = AnalyticsFilterForm(request.GET)
    form.is_valid()  # invalid fields are reported on the page and fall back to their defaults
    return form, resolve_filters(form.cleaned_data)


def _suggestions(principal: Any) -> dict[str, list[str]]:
    """Flows, methods and reviewers seen in the last SUGGESTION_DAYS, for the filter inputs (one query
    each, capped): from the weekly rollups (SPEC §19), not a DISTINCT over the requests."""
    since = week_of((timezone.now() - timedelta(days=SUGGESTION_DAYS)).date())
    deployments = Deployment.objects.filter(deployment_scope(principal, analytics_action(principal)))
    scope = Rollup.objects.filter(grain=Grain.WEEK, day__gte=since, deployment__in=deployments.values("pk"))
    # Flows and methods from the rows of all reviewers, reviewers from the rows of all flows (fewer rows).
    scopes = {
        "flow_name": scope.filter(reviewer=ALL_REVIEWERS).exclude(flow_name=ALL_FLOWS),
        "method_name": scope.filter(reviewer=ALL_REVIEWERS).exclude(flow_name=ALL_FLOWS),
        "reviewer": scope.filter(flow_name=ALL_FLOWS, method_name=ALL_METHODS).exclude(reviewer=ALL_REVIEWERS),
    }
    return {
        name: list(
            scopes[field]
            .order_by()
            .exclude(**{field: ""})
            .values_list(field, flat=True)
            .distinct()
            .order_by(field)[:SUGGESTIONS]
        )
        for name, field in (("flows", "flow_name"), ("methods", "method_name"), ("reviewers", "reviewer"))
    }


def _presets(filters: Filters) -> list[tuple[int, str]]:
    """ "Last N days" links that keep the other filters."""
    keep = {k: v for k, v in filters.params().items() if k in ("deployment", "flow", "method", "reviewer") and v}
    return [(days, urlencode({**keep, "days": days}, doseq=True)) for days in (7, 30, 90, 365)]


def _chart_data(report: dict[str, Any]) -> dict[str, Any]:
    periods = report["by_period"]

    def minutes(value: float | None) -> float | None:
        return None if value is None else round(value / 60, 1)

    def label(period: str) -> str:
        day = date.fromisoformat(period)
        return f"{day.day} {day:%b}"

    return {
        "periods": [label(row["period"]) for row in periods],
        "created": [row["created"] for row in periods],
        "resolved": [row["resolved"] for row in periods],
        "median": [minutes(row["response_time_median"]) for row in periods],
        "p90": [minutes(row["response_time_p90"]) for row in periods],
        "sla": [None if row["sla_share"] is None else round(row["sla_share"] * 100, 1) for row in periods],
        "outcomes": [row["outcome"] or "(no outcome)" for row in report["decisions"]],
        "human": [row["human"] for row in report["decisions"]],
        "auto": [row["auto"] for row in report["decisions"]],
        "channels": [row["source"] for row in report["channels"]],
        "channel_counts": [row["count"] for row in report["channels"]],
    }


@login_required
@require_GET
def page(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    report = Analytics.of(request.user, filters).report()
    context = {
        "form": form,
        "filters": filters,
        "query": filters.query_string(),
        "presets": _presets(filters),
        "cards": summary_cards(report["summary"]),
        "tables": [
            {"table": table, "rows": table.page_rows(PAGE_ROWS), "hidden": max(len(table.rows) - PAGE_ROWS, 0)}
            for table in build_tables(report)
        ],
        "chart_data": _chart_data(report),
        "deployments": list(analysable_deployments(request.user).values("pk", "name")),
        **_suggestions(request.user),
    }
    return render(request, "analytics/page.html", context)


@login_required
@require_GET
def table_csv(request: HttpRequest, name: str) -> HttpResponseBase:
    if name not in TABLES:
        raise Http404("No such table.")
    form, filters = _filters(request)
    if form.errors:
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    table = build_table(name, table_rows(Analytics.of(request.user, filters), name))
    response = StreamingHttpResponse(table.csv_lines(), content_type="text/csv; charset=utf-8")
    filename = f"hitl-analytics-{name}-{filters.first_day}-{filters.last_day}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
