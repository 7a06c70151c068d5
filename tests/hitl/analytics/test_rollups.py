"""The analytics rollups (SPEC §19): kept by the services in the same transaction as every change, equal to
the exact figures computed from the requests (tests/support/exact_analytics.py, the figures as they
were computed before the rollups), percentiles within 1 %, and `analytics_rebuild --check` catches a
rollup that disagrees. The same tests run on SQLite and, with DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hitl import services
from hitl.analytics.figures import Analytics, percentiles
from hitl.analytics.filters import AnalyticsFilterForm, requests_for, resolve_filters
from hitl.lib.errors import NotPending
from hitl.models import Grain, HITLRequest, Rollup, RollupTime, Source, Status
from hitl.services.resolve import expire_due_requests, expire_request
from hitl.services.rollups import GROWTH, _normal, _stored, bucket_of, check_rollups, rebuild_rollups
from tests.support import analytics_data as data
from tests.support.base import World
from tests.support.exact_analytics import ExactAnalytics

pytestmark = pytest.mark.django_db

PERCENTILES = ("response_time_median", "response_time_p90")


def both(principal: Any, now: Any = None, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(from the rollups, exact from the requests) for the same filters."""
    form = AnalyticsFilterForm(params)
    assert form.is_valid(), form.errors
    filters = resolve_filters(form.cleaned_data, today=(now or timezone.now()).date())
    now = now or timezone.now()
    return (
        Analytics.of(principal, filters, now=now).report(),
        ExactAnalytics(requests_for(principal, filters), filters, now=now).report(),
    )


def assert_agree(rolled: Any, exact: Any, path: str = "report") -> None:
    """Equal everywhere, but percentiles within 1 % (exact when their cells hold one value each)."""
    if isinstance(exact, dict):
        assert set(rolled) == set(exact), path
        for key in exact:
            if key in PERCENTILES and exact[key] is not None:
                assert rolled[key] == pytest.approx(exact[key], rel=0.01), f"{path}.{key}"
            else:
                assert_agree(rolled[key], exact[key], f"{path}.{key}")
    elif isinstance(exact, list):
        assert len(rolled) == len(exact), path
        for i, (r, e) in enumerate(zip(rolled, exact, strict=True)):
            assert_agree(r, e, f"{path}[{i}]")
    else:
        assert rolled == exact, path


def live_mix(world: World) -> list[str]:
    """Requests through the services: answers from several channels, a cancellation, timeouts (one by
    one and the sweeper's bulk path), a reassignment and a delegation, a pool with decisions whose
    assignee is replaced. Returns the ids."""
    made = [
        world.create(method_name=f"method-{i % 3}", assign_to=f"rev{i % 4}@example.com", timeout=60)["id"]
        for i in range(12)
    ]
    answer = services.Answer
    services.respond_to_request(made[0], answer(outcome="approved"), responder="rev0@example.com", source="email")
    services.respond_to_request(made[1], answer(outcome="rejected"), responder="rev1@example.com", source="api")
    services.respond_to_request(made[2], answer(feedback="looks fine"), responder="rev2@example.com", source="slack")
    services.cancel_request(made[3], actor="app", source=Source.API)
    later = timezone.now() + timedelta(seconds=90)
    expire_request(made[4], now=later)
    assert expire_due_requests([made[5], made[6]], later) == 2
    services.reassign_request(made[7], email="zed@example.com", actor="manager@example.com")
    services.respond_to_request(made[7], answer(outcome="approved"), responder="zed@example.com", source="dashboard")
    services.delegate_request(made[8], email="yan@example.com", actor="rev0@example.com")
    services.reassign_request(made[9], email="zed@example.com", actor="manager@example.com")  # stays pending
    pooled = world.create(approvers=["ann@example.com", "bob@example.com"], policy="all")["id"]
    services.respond_to_request(pooled, answer(outcome="approved"), responder="bob@example.com", source="api")
    services.reassign_request(pooled, email="cy@example.com", actor="manager@example.com", replace="ann@example.com")
    assert HITLRequest.objects.get(pk=pooled).assigned_to_email == "cy@example.com"
    services.respond_to_request(pooled, answer(outcome="approved"), responder="cy@example.com", source="email")
    return [*made, pooled]


class TestKeptByTheServices:
    def test_they_agree_with_the_exact_figures_after_a_mix_of_changes(self, world: World) -> None:
        live_mix(world)
        assert check_rollups() == []
        for params in (
            {"days": 7},
            {"days": 7, "reviewer": "zed@example.com"},
            {"days": 1, "method": "method-1"},
            {"days": 7, "reviewer": "*"},
        ):
            rolled, exact = both(world.manager, **params)
            assert_agree(rolled, exact)
        rolled, exact = both(world.manager, days=7)
        assert (
            rolled["summary"]["created"] == 13
            and rolled["summary"]["timed_out"] + rolled["summary"]["auto_responded"] == 3
        )
        reviewers = {row["key"]: row for row in rolled["by_reviewer"]}
        assert reviewers["zed@example.com"]["created"] == 2  # both reassigned requests moved to zed
        assert reviewers["yan@example.com"]["pending"] == 1
        assert {row["approver"]: row["decisions"] for row in rolled["by_approver"]} == {
            "bob@example.com": 1,
            "cy@example.com": 1,
        }

    def test_a_rebuild_writes_what_the_services_wrote(self, world: World) -> None:
        live_mix(world)
        today = timezone.now().date()
        window = (today - timedelta(days=today.weekday() + 7), today + timedelta(days=14))
        live, months = _normal(_stored(*window)), _normal(_stored(*window, months=True))
        assert live and months
        rebuild_rollups()
        assert _normal(_stored(*window)) == live
        assert _normal(_stored(*window, months=True)) == months

    def test_a_lost_compare_and_set_counts_nothing(self, world: World) -> None:
        made = world.create()["id"]
        services.respond_to_request(made, services.Answer(outcome="approved"), responder="x@example.com", source="api")
        with pytest.raises(NotPending):
            services.cancel_request(made, actor="app", source=Source.API)
        assert check_rollups() == []
        # its reviewer and all, each for its flow and method and for all of them
        assert [r.responded for r in Rollup.objects.filter(grain=Grain.DAY)] == [1, 1, 1, 1]
        assert [r.responded for r in Rollup.objects.filter(grain=Grain.MONTH)] == [1, 1, 1, 1]


class TestPercentileBound:
    def test_histogram_percentiles_are_within_one_percent_of_exact_ones(self) -> None:
        rng = random.Random(19)
        for size in (1, 2, 3, 10, 100, 1000, 5000):
            values = sorted(int(rng.lognormvariate(7, 2)) for _ in range(size))
            cells: dict[int, list[int]] = {}
            for v in values:
                cell = cells.setdefault(bucket_of(v), [0, v, v])
                cell[0], cell[1], cell[2] = cell[0] + 1, min(cell[1], v), max(cell[2], v)
            for fraction, estimate in zip((0.5, 0.9, 0.99), percentiles(cells, (0.5, 0.9, 0.99)), strict=True):
                position = fraction * (size - 1)
                below = int(position)
                exact = values[below] + (position - below) * (values[min(below + 1, size - 1)] - values[below])
                assert estimate == pytest.approx(exact, rel=0.01, abs=1e-9), (size, fraction)

    def test_cells_are_at_most_two_percent_wide(self) -> None:
        previous, start = bucket_of(50), 50
        for seconds in range(51, 2_000_000, 7):
            cell = bucket_of(seconds)
            if cell != previous:
                previous, start = cell, seconds
            assert seconds <= start * GROWTH + 1
        assert [bucket_of(s) for s in range(50)] == list(range(50))  # exact below 50 s

    def test_the_bound_holds_against_the_database_exact_percentiles(self, world: World) -> None:
        """A fixed data set of 1,500 human answers (1 s to ~10 days) on two reviewers over two weeks: every
        median and p90 of the report within 1 % of PostgreSQL's percentile_cont / SQLite's window SQL."""
        rng = random.Random(21)
        rows = []
        for i in range(1500):
            created = data.at(1, 0) + timedelta(minutes=rng.randrange(14 * 24 * 60))
            took = timedelta(seconds=max(1, int(rng.lognormvariate(6.5, 2.2))))
            rows.append(
                data.Row(
                    created,
                    Status.RESPONDED,
                    created + took,
                    "approved",
                    Source.EMAIL,
                    assignee=f"r{i % 2}@example.com",
                    flow=f"flow-{i % 3}",
                )
            )
        data.insert(world.deployment, rows)
        approximate = 0
        for params in ({"since": "2026-01-01", "until": "2026-01-20"}, {"since": "2026-01-03", "until": "2026-01-09"}):
            for bucket in ("day", "week"):
                rolled, exact = both(world.manager, now=data.NOW, bucket=bucket, **params)
                assert_agree(rolled, exact)
                approximate += rolled["summary"]["response_time_p90"] != exact["summary"]["response_time_p90"]
        assert approximate  # the data set does exercise the approximation


class TestPeriods:
    @pytest.mark.parametrize(
        ("since", "until", "bucket"),
        [
            ("2026-01-05", "2026-01-11", "day"),  # one whole week
            ("2026-01-01", "2026-01-11", "week"),  # a partial week, then a whole one
            ("2025-12-20", "2026-01-12", "week"),  # partial, whole, partial
            ("2026-01-06", "2026-01-08", "day"),  # inside one week
            ("2025-12-01", "2026-02-28", "day"),  # three whole months
            ("2025-11-20", "2026-02-10", "week"),  # days, a week, December and January, a week, days
            ("2025-12-01", "2026-01-31", "week"),  # whole months, per-week buckets
        ],
    )
    def test_any_period_agrees_with_the_exact_figures(self, world: World, since: str, until: str, bucket: str) -> None:
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(80, start=data.at(15, 3, month=12, year=2025)))
        for params in ({}, {"reviewer": "reviewer1@example.com"}, {"flow": "flow-2", "method": "method-3"}):
            rolled, exact = both(world.manager, now=data.NOW, since=since, until=until, bucket=bucket, **params)
            assert_agree(rolled, exact)


class TestRebuildCommand:
    def test_check_passes_then_catches_a_tampered_count_and_a_rebuild_repairs_it(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data.load(world.deployment, world.other)
        call_command("analytics_rebuild", "--check")
        assert "agree" in capsys.readouterr().out
        row = Rollup.objects.filter(grain=Grain.WEEK, created__gt=0).order_by("pk").first()
        assert row is not None
        Rollup.objects.filter(pk=row.pk).update(created=F("created") + 1)
        with pytest.raises(CommandError, match="disagree"):
            call_command("analytics_rebuild", "--check")
        assert "created" in capsys.readouterr().out
        call_command("analytics_rebuild")
        call_command("analytics_rebuild", "--check")

    def test_check_catches_a_tampered_histogram_and_a_missing_row(self, world: World) -> None:
        data.load(world.deployment, world.other)
        RollupTime.objects.filter(pk=RollupTime.objects.order_by("pk").values("pk")[:1]).update(high=F("high") + 5)
        assert any(line.startswith("time ") for line in check_rollups())
        rebuild_rollups()
        Rollup.objects.filter(pk=Rollup.objects.filter(grain=Grain.DAY).order_by("-pk").values("pk")[:1]).delete()
        assert check_rollups()

    def test_it_exits_non_zero(self, world: World) -> None:
        data.load(world.deployment, world.other)
        Rollup.objects.filter(grain=Grain.DAY).update(responded=F("responded") + 1)
        with pytest.raises(SystemExit) as exited:
            from django.core.management import execute_from_command_line

            execute_from_command_line(["manage.py", "analytics_rebuild", "--check", "--limit", "3"])
        assert exited.value.code == 1


class TestQueries:
    def test_the_report_takes_a_fixed_number_of_queries(self, world: World) -> None:
        data.load(world.deployment, world.other)
        form = AnalyticsFilterForm(data.PERIOD)
        assert form.is_valid()
        filters = resolve_filters(form.cleaned_data)
        Analytics.of(world.manager, filters, now=data.NOW).report()  # warm-up: the permission cache
        with CaptureQueriesContext(connection) as small:
            Analytics.of(world.manager, filters, now=data.NOW).report()
        data.insert(world.deployment, data.more_rows(120))
        with CaptureQueriesContext(connection) as large:
            Analytics.of(world.manager, filters, now=data.NOW).report()
        assert len(small.captured_queries) == len(large.captured_queries) <= 14
