"""Analytics figures against a fixed dataset with hand-computed answers (tests/support/analytics_data.py).

The same assertions run on SQLite and on PostgreSQL (DATABASE_URL), so both databases give the same
numbers; on PostgreSQL the percentiles are also checked against its own `percentile_cont`.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from hitl.analytics.figures import Analytics
from hitl.analytics.filters import AnalyticsFilterForm, resolve_filters
from tests.support import analytics_data as data
from tests.support.base import World

pytestmark = pytest.mark.django_db


def analytics(principal: Any, **params: Any) -> Analytics:
    form = AnalyticsFilterForm({**data.PERIOD, **params})
    assert form.is_valid(), form.errors
    filters = resolve_filters(form.cleaned_data)
    return Analytics.of(principal, filters, now=data.NOW)


@pytest.fixture
def loaded(world: World) -> World:
    data.load(world.deployment, world.other)
    return world


def by_key(rows: list[dict[str, Any]], key: str = "key") -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


class TestSummary:
    def test_it_counts_created_resolved_and_each_status(self, loaded: World) -> None:
        summary = analytics(loaded.manager).summary()
        assert summary["created"] == 12
        assert summary["resolved"] == 11
        assert (summary["responded"], summary["auto_responded"], summary["timed_out"], summary["cancelled"]) == (
            8,
            1,
            1,
            1,
        )

    def test_it_computes_response_time_mean_median_and_p90(self, loaded: World) -> None:
        summary = analytics(loaded.manager).summary()
        assert summary["answered"] == 8
        assert summary["response_time_mean"] == 2780.625
        assert summary["response_time_median"] == 1050.0
        assert summary["response_time_p90"] == 6780.0

    def test_it_computes_sla_and_auto_response_shares(self, loaded: World) -> None:
        summary = analytics(loaded.manager).summary()
        # SLA due on 1-4 (human), 6 (auto) and 7 (timed out); the cancelled 8 needed no answer.
        assert (summary["sla_met"], summary["sla_total"], summary["sla_share"]) == (3, 6, 0.5)
        # 1 auto-response of 8 human + 1 auto + 1 timed out.
        assert summary["auto_response_share"] == 0.1

    def test_it_reports_the_backlog_now(self, loaded: World) -> None:
        summary = analytics(loaded.manager).summary()
        assert (summary["pending"], summary["overdue"]) == (3, 1)
        assert summary["oldest_pending_at"] == data.at(20, 8, month=12, year=2025).isoformat()
        assert summary["oldest_pending_age_seconds"] == int(
            (data.NOW - data.at(20, 8, month=12, year=2025)).total_seconds()
        )

    def test_an_empty_selection_has_no_averages_and_no_shares(self, loaded: World) -> None:
        summary = analytics(loaded.manager, flow="nothing-here").summary()
        assert summary["created"] == summary["resolved"] == summary["pending"] == 0
        assert summary["response_time_median"] is summary["sla_share"] is summary["auto_response_share"] is None
        assert summary["oldest_pending_age_seconds"] is None


class TestDecisionsAndChannels:
    def test_it_counts_decisions_per_outcome_human_and_auto(self, loaded: World) -> None:
        decisions = by_key(analytics(loaded.manager).decisions(), "outcome")
        assert decisions["approved"] == {"outcome": "approved", "human": 5, "auto": 1, "total": 6, "share": 0.6667}
        assert decisions["rejected"]["total"] == decisions["needs_revision"]["total"] == 1
        assert decisions[""] == {"outcome": "", "human": 1, "auto": 0, "total": 1, "share": 0.1111}
        assert list(decisions) == ["approved", "", "needs_revision", "rejected"]

    def test_it_counts_the_channel_mix_of_answers(self, loaded: World) -> None:
        channels = {row["source"]: row["count"] for row in analytics(loaded.manager).channels()}
        assert channels == {"email": 5, "dashboard": 1, "api": 1, "telegram": 1, "slack": 0, "auto": 1}


class TestBreakdowns:
    def test_per_reviewer(self, loaded: World) -> None:
        rows = by_key(analytics(loaded.manager).by_dimension("reviewer"))
        alice, bob = rows["alice@example.com"], rows["bob@example.com"]
        # alice: 45, 300, 600, 1200, 5400, 6600
        assert (alice["answered"], alice["response_time_mean"]) == (6, 2357.5)
        assert (alice["response_time_median"], alice["response_time_p90"]) == (900.0, 6000.0)
        assert (alice["sla_met"], alice["sla_total"], alice["pending"], alice["overdue"]) == (3, 4, 2, 1)
        # bob: 900, 7200; one auto-response, one timeout, one cancellation, the oldest pending request
        assert (bob["response_time_median"], bob["response_time_p90"]) == (4050.0, 6570.0)
        assert (bob["auto_responded"], bob["timed_out"], bob["cancelled"], bob["pending"]) == (1, 1, 1, 1)
        assert bob["auto_response_share"] == round(1 / 4, 4)
        assert bob["sla_share"] == 0.0

    def test_per_flow_and_method(self, loaded: World) -> None:
        report = analytics(loaded.manager)
        flows = by_key(report.by_dimension("flow"))
        assert flows["content"]["created"] == 8 and flows["payments"]["created"] == 4
        # payments: 45, 6600, 900 → median 900, p90 at 2.8 → 900 + 0.8·5700
        assert flows["payments"]["response_time_median"] == 900.0
        assert flows["payments"]["response_time_p90"] == 5460.0
        methods = by_key(report.by_dimension("method"))
        assert set(methods) == {"review_article", "review_summary", "approve_payment"}
        assert methods["review_summary"]["sla_total"] == 2 and methods["review_summary"]["sla_met"] == 0

    def test_per_deployment_only_shows_what_the_principal_manages(self, loaded: World) -> None:
        rows = analytics(loaded.manager).by_dimension("deployment")
        assert [(r["key"], r["label"]) for r in rows] == [(loaded.deployment.pk, "Content Review")]
        admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        everything = by_key(analytics(admin).by_dimension("deployment"))
        assert everything[loaded.other.pk]["responded"] == 1
        assert everything[loaded.other.pk]["response_time_median"] == 60.0

    def test_filters_narrow_every_figure(self, loaded: World) -> None:
        summary = analytics(loaded.manager, reviewer="BOB@example.com", method="review_summary").summary()
        assert (summary["created"], summary["responded"], summary["response_time_median"]) == (4, 1, 7200.0)
        assert analytics(loaded.manager, flow="payments").summary()["pending"] == 2


class TestPerPeriod:
    def test_daily_volume_created_vs_resolved(self, loaded: World) -> None:
        rows = analytics(loaded.manager).by_period()
        assert [r["period"] for r in rows] == [f"2026-01-{d:02d}" for d in range(5, 12)]
        assert [r["created"] for r in rows] == [2, 2, 2, 2, 1, 2, 1]
        assert [r["resolved"] for r in rows] == [3, 2, 2, 2, 1, 1, 0]
        # The 5th: 600, 1200 and the 6600 s answer created on the 4th.
        assert rows[0]["response_time_median"] == 1200.0
        assert rows[6]["response_time_median"] is None

    def test_weekly_buckets_start_on_monday(self, loaded: World) -> None:
        rows = analytics(loaded.manager, since="2026-01-01", bucket="week").by_period()
        assert [r["period"] for r in rows] == ["2025-12-29", "2026-01-05"]
        # The week of Dec 29 (from Jan 1 on) holds the request created on Sunday the 4th.
        assert [r["created"] for r in rows] == [1, 12]
        assert [r["resolved"] for r in rows] == [0, 11]
        assert rows[1]["response_time_p90"] == 6780.0

    def test_days_are_utc_whatever_the_time_zone_setting(self, loaded: World, settings: Any) -> None:
        settings.TIME_ZONE = "America/New_York"
        rows = analytics(loaded.manager).by_period()
        assert [r["created"] for r in rows] == [2, 2, 2, 2, 1, 2, 1]
        assert [r["resolved"] for r in rows] == [3, 2, 2, 2, 1, 1, 0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="percentile_cont is PostgreSQL's")
class TestAgainstPostgres:
    def test_window_percentiles_match_percentile_cont(self, loaded: World) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.9) WITHIN GROUP (ORDER BY s) "
                "FROM (SELECT EXTRACT(EPOCH FROM resolved_at - created_at) AS s FROM hitl_hitlrequest "
                "WHERE status = 'responded' AND deployment_id = %s AND resolved_at >= %s AND resolved_at < %s) t",
                [loaded.deployment.pk, data.at(5, 0), data.at(12, 0)],
            )
            median, p90 = cursor.fetchone()
        summary = analytics(loaded.manager).summary()
        assert (summary["response_time_median"], summary["response_time_p90"]) == (median, p90)
