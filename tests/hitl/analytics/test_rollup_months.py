"""Issue 21: month rollups (a period reads the coarsest rows that tile it exactly), the writes batched
into one statement on PostgreSQL, the migration that fills the months of an upgraded install, and the
system check that catches an install whose rollups were never built."""

from __future__ import annotations

import importlib
import random
from datetime import date, timedelta

import pytest
from django.apps import apps
from django.core import checks
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from hitl import services
from hitl.analytics.figures import Analytics
from hitl.analytics.filters import AnalyticsFilterForm, resolve_filters
from hitl.checks import check_rollups_built
from hitl.models import Grain, HITLRequest, Rollup, RollupAnswer, RollupTime
from hitl.services.rollups import check_rollups, rebuild_rollups, tiles
from tests.support import analytics_data as data
from tests.support.base import World

fill_months = importlib.import_module("hitl.migrations.0020_rollup_months").fill_months


class TestTiles:
    def test_a_year_is_twelve_months(self) -> None:
        assert tiles(date(2026, 1, 1), date(2027, 1, 1)) == [(Grain.MONTH, date(2026, 1, 1), date(2027, 1, 1))]

    def test_the_edges_are_weeks_then_days(self) -> None:
        # Tuesday 2025-11-18 … Wednesday 2026-02-11 (exclusive)
        assert sorted(tiles(date(2025, 11, 18), date(2026, 2, 11)), key=lambda t: t[1]) == [
            (Grain.DAY, date(2025, 11, 18), date(2025, 11, 24)),
            (Grain.WEEK, date(2025, 11, 24), date(2025, 12, 1)),
            (Grain.MONTH, date(2025, 12, 1), date(2026, 2, 1)),
            (Grain.DAY, date(2026, 2, 1), date(2026, 2, 2)),
            (Grain.WEEK, date(2026, 2, 2), date(2026, 2, 9)),
            (Grain.DAY, date(2026, 2, 9), date(2026, 2, 11)),
        ]

    def test_any_period_is_covered_once_by_aligned_rows(self) -> None:
        rng = random.Random(21)
        for _ in range(2000):
            first = date(2024, 1, 1) + timedelta(days=rng.randrange(900))
            end = first + timedelta(days=rng.randrange(1, 500))
            months = rng.random() < 0.8
            covered: list[date] = []
            for grain, start, until in tiles(first, end, months=months):
                assert start < until
                if grain == Grain.MONTH:
                    assert months and start.day == 1 and until.day == 1
                elif grain == Grain.WEEK:
                    assert start.weekday() == 0 and until.weekday() == 0
                covered += [start + timedelta(days=i) for i in range((until - start).days)]
            assert sorted(covered) == [first + timedelta(days=i) for i in range((end - first).days)]


def summary_rows(world: World, since: str, until: str) -> int:
    """How many rollup rows the summary of that period reads."""
    form = AnalyticsFilterForm({"since": since, "until": until})
    assert form.is_valid(), form.errors
    return Analytics.of(world.manager, resolve_filters(form.cleaned_data), now=data.NOW)._in_period().count()


@pytest.mark.django_db
class TestMonthRows:
    def test_a_year_reads_a_row_per_month(self, world: World) -> None:
        rows = [
            data.Row(data.at(3 + day % 20, 10, month=month, year=2025), assignee=f"r{day % 5}@example.com")
            for month in range(1, 13)
            for day in range(9)
        ]
        data.insert(world.deployment, rows)
        assert summary_rows(world, "2025-01-01", "2025-12-31") == 12
        assert (
            summary_rows(world, "2025-01-01", "2025-12-31")
            < Rollup.objects.filter(grain=Grain.WEEK, reviewer="*").count()
        )
        rolled = Analytics.of(
            world.manager, resolve_filters({"since": date(2025, 1, 1), "until": date(2025, 12, 31)}), now=data.NOW
        ).summary()
        assert rolled["created"] == 108

    def test_check_catches_a_tampered_month_and_the_migration_fills_missing_ones(self, world: World) -> None:
        data.load(world.deployment, world.other)
        data.insert(world.deployment, data.more_rows(60, start=data.at(15, 3, month=12, year=2025)))
        assert check_rollups() == []
        Rollup.objects.filter(pk=Rollup.objects.filter(grain=Grain.MONTH).order_by("pk").values("pk")[:1]).update(
            created=F("created") + 1
        )
        assert any(" m " in f" {line} " for line in check_rollups())
        rebuild_rollups()
        assert check_rollups() == []
        month_cells = RollupTime.objects.filter(rollup__grain=Grain.MONTH).count()
        assert month_cells
        Rollup.objects.filter(grain=Grain.MONTH).delete()  # an install upgraded from day and week rows
        assert check_rollups()
        fill_months(apps, None)
        assert check_rollups() == []
        assert RollupTime.objects.filter(rollup__grain=Grain.MONTH).count() == month_cells


@pytest.mark.django_db
class TestOneStatement:
    def test_a_human_answer_writes_the_rollups_in_one_statement_on_postgresql(self, world: World) -> None:
        made = world.create()["id"]
        tables = [m._meta.db_table for m in (Rollup, RollupTime, RollupAnswer)]
        with CaptureQueriesContext(connection) as queries:
            services.respond_to_request(
                made, services.Answer(outcome="approved"), responder="x@example.com", source="api"
            )
        writes = [q["sql"] for q in queries.captured_queries if any(f"INTO {t} " in q["sql"] for t in tables)]
        assert len(writes) == (1 if connection.vendor == "postgresql" else 3)
        assert check_rollups() == []
        # day, week, month × its reviewer and all × its flow and method and all (issue 21)
        assert Rollup.objects.filter(responded=1).count() == 12


@pytest.mark.django_db
class TestRollupsBuiltCheck:
    def test_it_warns_when_requests_have_no_rollups(self, world: World) -> None:
        assert check_rollups_built(databases=["default"]) == []  # nothing at all
        world.create()
        assert check_rollups_built(databases=["default"]) == []  # the services kept them
        Rollup.objects.all().delete()  # an install upgraded without `analytics_rebuild`
        [warning] = check_rollups_built(databases=["default"])
        assert warning.id == "hitl.W004" and warning.level == checks.WARNING
        assert "analytics_rebuild" in (warning.hint or "")
        assert warning in checks.run_checks(tags=[checks.Tags.database], databases=["default"])
        assert check_rollups_built() == []  # a check without databases reads none
        rebuild_rollups()
        assert check_rollups_built(databases=["default"]) == []
        assert HITLRequest.objects.count() == 1
