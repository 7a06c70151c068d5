"""Issue 21: the rollup rows of all flows and methods (flow and method `*`). They sum the rows per
(flow, method) exactly, the figures without a flow or method filter read them and agree with the
exact figures, the migration fills them for an upgraded install, the report's query count is the same
whatever the filters, and `*` cannot be a flow or method name."""

from __future__ import annotations

import importlib
from collections import defaultdict
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from flows.registry import register
from flows.runtime import Flow
from hitl.analytics.figures import Analytics, interpolated, percentiles
from hitl.analytics.filters import AnalyticsFilterForm, resolve_filters
from hitl.models import HITLRequest, Rollup, RollupAnswer, RollupApproval, RollupTime
from hitl.services.rollups import ALL_FLOWS, ALL_REVIEWERS, check_rollups
from tests.hitl.analytics.test_rollups import assert_agree, both, live_mix
from tests.support import analytics_data as data
from tests.support.base import World

pytestmark = pytest.mark.django_db

fill_marginals = importlib.import_module("hitl.migrations.0022_rollup_marginals").fill_marginals
KEY = ("grain", "day", "deployment_id", "reviewer")


def analytics(world: World, **params: Any) -> Analytics:
    form = AnalyticsFilterForm(params)
    assert form.is_valid(), form.errors
    return Analytics.of(world.manager, resolve_filters(form.cleaned_data, today=data.NOW.date()), now=data.NOW)


def summed_per_flow() -> tuple[dict[Any, Any], dict[Any, Any]]:
    """(what the rows per flow sum to, what the rows of all flows hold), per table, by (grain, day,
    deployment, reviewer) and the child's own key: counts add, cells add n and take min low / max high."""
    per_flow: dict[Any, Any] = defaultdict(lambda: defaultdict(int))
    marginal: dict[Any, Any] = defaultdict(lambda: defaultdict(int))
    columns = ("created", "responded", "auto_responded", "timed_out", "cancelled", "sla_total", "sla_met")
    for row in Rollup.objects.values(*KEY, "flow_name", "method_name", *columns, "response_seconds"):
        into = marginal if row["flow_name"] == ALL_FLOWS else per_flow
        assert (row["flow_name"] == ALL_FLOWS) == (row["method_name"] == ALL_FLOWS)
        for column in (*columns, "response_seconds"):
            into[("count", *(row[k] for k in KEY))][column] += row[column]
    prefixed = [f"rollup__{k}" for k in KEY]
    for *key, flow, bucket, n, low, high in RollupTime.objects.values_list(
        *prefixed, "rollup__flow_name", "bucket", "n", "low", "high"
    ):
        cell = (marginal if flow == ALL_FLOWS else per_flow)[("time", *key, bucket)]
        cell["n"] += n
        cell["low"] = min(cell.get("low", low), low)
        cell["high"] = max(cell.get("high", high), high)
    for *key, flow, human, outcome, source, n in RollupAnswer.objects.values_list(
        *prefixed, "rollup__flow_name", "human", "outcome", "source", "n"
    ):
        (marginal if flow == ALL_FLOWS else per_flow)[("answer", *key, human, outcome, source)]["n"] += n
    for *key, flow, approver, n, micros in RollupApproval.objects.values_list(
        *prefixed, "rollup__flow_name", "approver", "n", "microseconds"
    ):
        approval = (marginal if flow == ALL_FLOWS else per_flow)[("approval", *key, approver)]
        approval["n"] += n
        approval["microseconds"] += micros

    def plain(found: dict[Any, Any]) -> dict[Any, Any]:
        return {key: dict(values) for key, values in found.items() if any(values.values())}

    return plain(per_flow), plain(marginal)


class TestMarginalRows:
    def test_they_sum_the_rows_per_flow_and_method(self, world: World) -> None:
        live_mix(world)
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(40))
        per_flow, marginal = summed_per_flow()
        assert marginal and marginal == per_flow
        assert check_rollups() == []

    def test_figures_without_a_flow_or_method_filter_read_them(self, world: World) -> None:
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(40))
        for params in ({}, {"reviewer": "reviewer1@example.com"}, {"deployment": str(world.deployment.pk)}):
            figures = analytics(world, **data.PERIOD, **params)
            for rows in ("totals", "per_reviewer"):
                read = figures._in_period(rows)
                assert read.exists() and not read.exclude(flow_name=ALL_FLOWS).exists(), (params, rows)
            assert not figures._in_period("flow_totals").filter(flow_name=ALL_FLOWS).exists()
        for params in ({"flow": "flow-1"}, {"method": "method-2"}, {"flow": "content", "reviewer": "bob@example.com"}):
            figures = analytics(world, **data.PERIOD, **params)
            for rows in ("totals", "per_reviewer", "flow_totals"):
                assert not figures._in_period(rows).filter(flow_name=ALL_FLOWS).exists(), (params, rows)
        totals = analytics(world, **data.PERIOD)._in_period("totals")
        assert set(totals.values_list("reviewer", flat=True)) == {ALL_REVIEWERS}

    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"bucket": "day"},
            {"reviewer": "alice@example.com"},
            {"flow": "content"},
            {"method": "review_summary"},
            {"flow": "flow-2", "reviewer": "reviewer2@example.com"},
            {"method": "method-3", "bucket": "week"},
            {"reviewer": "reviewer4@example.com", "deployment": "DEPLOYMENT"},
        ],
    )
    def test_every_figure_agrees_with_the_exact_figures(self, world: World, params: dict[str, str]) -> None:
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(60))
        params = {k: (str(world.deployment.pk) if v == "DEPLOYMENT" else v) for k, v in params.items()}
        rolled, exact = both(world.manager, now=data.NOW, **data.PERIOD, **params)
        assert_agree(rolled, exact)
        assert rolled["summary"]["created"] > 0

    def test_a_filter_of_star_is_no_flow_and_no_method(self, world: World) -> None:
        data.load(world.deployment, world.other)
        for params in ({"flow": "*"}, {"method": "*"}, {"flow": "*", "method": "*"}):
            rolled, exact = both(world.manager, now=data.NOW, **data.PERIOD, **params)
            assert_agree(rolled, exact)
            assert rolled["summary"]["created"] == rolled["summary"]["resolved"] == 0

    def test_a_selection_of_nothing_has_no_histogram(self, world: World) -> None:
        data.load(world.deployment, world.other)
        figures = analytics(world, **data.PERIOD)
        nothing = Analytics(figures.requests, figures.filters, data.NOW, rollups=Rollup.objects.none())
        assert nothing.summary()["answered"] == 0 and nothing.summary()["response_time_median"] is None
        assert figures.summary()["response_time_median"] is not None

    def test_ranks_found_in_sql_equal_the_histograms_percentiles(self, world: World) -> None:
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(150))
        live_mix(world)
        figures = analytics(world, since="2025-12-29", until=str(timezone.now().date()))
        for rows, key in ((figures._in_period("per_reviewer"), "reviewer"), (figures.totals, "day")):
            histograms = figures._cells(rows, key)
            ranked = figures._ranked(rows, key)
            assert len(ranked) == len(histograms) > 3
            for group, histogram in histograms.items():
                assert ranked[group] == pytest.approx(tuple(percentiles(histogram, (0.5, 0.9)))), group
        assert interpolated(1, lambda rank: 7.0) == (7.0, 7.0)

    def test_the_suggestions_show_no_star(self, world: World) -> None:
        from hitl.analytics.views import _suggestions

        world.create(flow_name="content", method_name="review", assign_to="ann@example.com")
        assert _suggestions(world.manager) == {
            "flows": ["content"],
            "methods": ["review"],
            "reviewers": ["ann@example.com"],
        }


class TestQueries:
    def test_the_report_takes_the_same_queries_with_and_without_filters(self, world: World) -> None:
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(60))
        analytics(world, **data.PERIOD).report()  # warm-up: the permission cache
        counts = []
        for params in ({}, {"flow": "flow-1"}, {"method": "method-1"}, {"reviewer": "reviewer1@example.com"}):
            with CaptureQueriesContext(connection) as queries:
                analytics(world, **data.PERIOD, **params).report()
            counts.append(len(queries.captured_queries))
        assert counts == [counts[0]] * 4 and counts[0] <= 14


class _Editor:
    """What the migration needs of a schema editor (SQLite's refuses to open inside a test's transaction)."""

    def execute(self, sql: str, params: Any = ()) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


class TestMigration:
    def test_it_fills_the_rows_of_all_flows_of_an_upgraded_install(self, world: World) -> None:
        live_mix(world)
        data.load(world.deployment, world.other)
        assert check_rollups() == []
        before = summed_per_flow()[1]
        Rollup.objects.filter(flow_name=ALL_FLOWS).delete()  # an install upgraded from rows per flow
        assert check_rollups()
        fill_marginals(apps, _Editor())
        assert check_rollups() == []
        assert summed_per_flow()[1] == before

    def test_it_renames_a_flow_or_method_that_was_named_star(self, world: World) -> None:
        data.insert(world.deployment, [data.Row(data.at(5, 10), flow="*"), data.Row(data.at(5, 11), method="*")])
        Rollup.objects.filter(flow_name=ALL_FLOWS, method_name=ALL_FLOWS).delete()
        fill_marginals(apps, _Editor())
        assert sorted(HITLRequest.objects.values_list("flow_name", "method_name")) == [
            ("(*)", "review_article"),
            ("content", "(*)"),
        ]
        assert check_rollups() == []


class TestStarIsNoName:
    @pytest.mark.parametrize("field", ["flow_name", "method_name"])
    def test_creating_a_request_named_star_is_refused(self, world: World, field: str) -> None:
        response = world.client_for("key").post("/api/v1/requests/", {"message": "Review", field: "*"}, format="json")
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "reserved_name" and "reserved" in body["detail"]
        assert list(body["errors"]) == [field]
        assert not HITLRequest.objects.exists()
        world.create(**{field: "*-ish"})  # only the bare star is reserved

    def test_a_flow_cannot_be_registered_as_star(self) -> None:
        with pytest.raises(ValueError, match="reserved"):
            register("*")(type("Star", (Flow,), {}))

    def test_rows_of_all_flows_are_written_beside_each_change(self, world: World) -> None:
        world.create(flow_name="f", method_name="m")
        assert set(Rollup.objects.values_list("flow_name", "method_name")) == {("f", "m"), ("*", "*")}
        # a day, a week and a month, for the assignee and for all reviewers, each per flow and for all flows
        assert Rollup.objects.filter(flow_name="*").count() == Rollup.objects.exclude(flow_name="*").count() == 6
