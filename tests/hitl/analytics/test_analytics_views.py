"""The analytics page, its CSV downloads and GET /api/v1/analytics/: who may see what, the same figures
everywhere, and query counts that do not grow with the data."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.support import analytics_data as data
from tests.support.base import World

pytestmark = pytest.mark.django_db

PERIOD = "since=2026-01-05&until=2026-01-11"
PAGE = "/analytics/"
API = "/api/v1/analytics/"


@pytest.fixture
def loaded(world: World) -> World:
    data.load(world.deployment, world.other)
    return world


def browser(user: Any) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def csv_rows(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


class TestAnalyticsPage:
    def test_a_manager_sees_figures_charts_and_tables(self, loaded: World) -> None:
        response = browser(loaded.manager).get(f"{PAGE}?{PERIOD}")
        assert response.status_code == 200
        html = response.content.decode()
        assert "vendor/chart.umd.min.js" in html and "analytics/analytics.js" in html
        assert 'id="analytics-data"' in html
        cards = {c["label"]: c["value"] for c in response.context["cards"]}
        assert cards["Created"] == "12"
        assert cards["Median response"] == "17 min 30 s"  # 1050 s
        assert cards["Within SLA"] == "50 %"
        assert cards["Pending now"] == "3"
        names = [item["table"].name for item in response.context["tables"]]
        assert names == ["period", "deployment", "flow", "method", "reviewer", "decisions", "channels"]
        for name in names:
            assert f"/analytics/{name}.csv?" in html

    def test_the_chart_data_follows_the_filters(self, loaded: World) -> None:
        response = browser(loaded.manager).get(f"{PAGE}?{PERIOD}&bucket=week&reviewer=bob@example.com")
        chart = response.context["chart_data"]
        assert chart["periods"] == ["5 Jan"]
        assert chart["created"] == [5] and chart["resolved"] == [5]
        assert chart["median"] == [round(4050 / 60, 1)]

    def test_anonymous_users_are_sent_to_log_in(self, loaded: World) -> None:
        response = browser(None).get(PAGE)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

    @pytest.mark.parametrize("who", ["responder", "stranger"])
    def test_users_who_manage_nothing_get_403(self, loaded: World, who: str) -> None:
        assert browser(getattr(loaded, who)).get(PAGE).status_code == 403

    def test_another_deployment_is_404_and_a_responded_one_403(self, loaded: World) -> None:
        assert browser(loaded.manager).get(f"{PAGE}?deployment={loaded.other.pk}").status_code == 404
        assert browser(loaded.responder).get(f"{PAGE}?deployment={loaded.deployment.pk}").status_code == 403
        assert browser(loaded.manager).get(f"{PAGE}?deployment={loaded.deployment.pk}").status_code == 200

    def test_bad_filters_are_reported_and_ignored(self, loaded: World) -> None:
        response = browser(loaded.manager).get(f"{PAGE}?since=soon&bucket=year")
        assert response.status_code == 200
        assert "Some filters were ignored" in response.content.decode()
        assert response.context["filters"].bucket == "day"

    def test_the_query_count_does_not_grow_with_the_data(
        self, loaded: World, django_assert_max_num_queries: Any
    ) -> None:
        client = browser(loaded.manager)
        with CaptureQueriesContext(connection) as small:
            assert client.get(f"{PAGE}?{PERIOD}").status_code == 200
        data.insert(loaded.deployment, data.more_rows(60))
        with django_assert_max_num_queries(len(small.captured_queries)):
            response = client.get(f"{PAGE}?{PERIOD}")
        assert response.context["cards"][0]["value"] != "12"  # the new rows are counted


class TestAnalyticsCsv:
    def test_each_table_downloads_with_raw_values(self, loaded: World) -> None:
        client = browser(loaded.manager)
        response = client.get(f"/analytics/reviewer.csv?{PERIOD}")
        assert response["Content-Type"].startswith("text/csv")
        assert 'filename="hitl-analytics-reviewer-2026-01-05-2026-01-11.csv"' in response["Content-Disposition"]
        rows = {row["label"]: row for row in csv_rows(response)}
        assert rows["alice@example.com"]["response_time_median"] == "900.0"
        assert rows["bob@example.com"]["response_time_p90"] == "6570.0"
        assert rows["bob@example.com"]["sla_share"] == "0.0"
        period = csv_rows(client.get(f"/analytics/period.csv?{PERIOD}"))
        assert [r["created"] for r in period] == ["2", "2", "2", "2", "1", "2", "1"]
        decisions = {r["outcome"]: r["total"] for r in csv_rows(client.get(f"/analytics/decisions.csv?{PERIOD}"))}
        assert decisions == {"approved": "6", "": "1", "needs_revision": "1", "rejected": "1"}

    def test_csv_cells_cannot_be_formulas(self, world: World) -> None:
        rows = data.more_rows(1)
        rows[0].flow = '=HYPERLINK("http://evil.example")'
        data.insert(world.deployment, rows)
        flows = csv_rows(browser(world.manager).get(f"/analytics/flow.csv?{PERIOD}"))
        assert flows[0]["label"].startswith("'=")

    def test_csv_follows_the_same_permissions(self, loaded: World) -> None:
        assert browser(loaded.stranger).get("/analytics/flow.csv").status_code == 403
        assert browser(loaded.manager).get(f"/analytics/flow.csv?deployment={loaded.other.pk}").status_code == 404
        assert browser(loaded.manager).get("/analytics/nope.csv").status_code == 404
        assert browser(loaded.manager).get("/analytics/flow.csv?bucket=year").status_code == 400


class TestAnalyticsApi:
    def test_it_returns_the_same_figures_as_the_page(self, loaded: World) -> None:
        response = loaded.client_for("manager").get(f"{API}?{PERIOD}")
        assert response.status_code == 200
        body = response.json()
        assert body["period"] == {"since": "2026-01-05", "until": "2026-01-11", "bucket": "day", "timezone": "UTC"}
        summary = body["summary"]
        assert (summary["created"], summary["resolved"], summary["pending"]) == (12, 11, 3)
        assert (summary["response_time_median"], summary["response_time_p90"]) == (1050.0, 6780.0)
        assert summary["sla_share"] == 0.5 and summary["auto_response_share"] == 0.1
        assert [r["created"] for r in body["by_period"]] == [2, 2, 2, 2, 1, 2, 1]
        assert {r["key"] for r in body["by_reviewer"]} == {"alice@example.com", "bob@example.com"}
        assert [r["key"] for r in body["by_deployment"]] == [loaded.deployment.pk]
        assert {c["source"]: c["count"] for c in body["channels"]}["email"] == 5

    @pytest.mark.parametrize("who", ["key", "read_key"])
    def test_an_api_key_reads_its_own_deployment(self, loaded: World, who: str) -> None:
        response = loaded.client_for(who).get(f"{API}?{PERIOD}")
        assert response.status_code == 200
        assert response.json()["summary"]["created"] == 12

    def test_another_deployments_key_sees_only_its_own(self, loaded: World) -> None:
        client = loaded.client_for("other_key")
        assert client.get(f"{API}?{PERIOD}").json()["summary"]["responded"] == 1
        response = client.get(f"{API}?deployment={loaded.deployment.pk}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    def test_other_deployment_404_no_permission_403(self, loaded: World) -> None:
        assert loaded.client_for("manager").get(f"{API}?deployment={loaded.other.pk}").status_code == 404
        for who in ("responder", "stranger"):
            response = loaded.client_for(who).get(API)
            assert response.status_code == 403 and response.json()["code"] == "permission_denied"
        assert loaded.client_for("responder").get(f"{API}?deployment={loaded.deployment.pk}").status_code == 403
        assert loaded.client_for("anonymous").get(API).status_code in (401, 403)

    def test_a_superuser_may_combine_deployments(self, loaded: World) -> None:
        root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        client = loaded.client_for("anonymous")
        client.force_authenticate(root)
        ids = f"{loaded.deployment.pk},{loaded.other.pk}"
        body = client.get(f"{API}?{PERIOD}&deployment={ids}").json()
        assert body["summary"]["responded"] == 9
        assert body["filters"]["deployment"] == sorted([loaded.deployment.pk, loaded.other.pk])

    @pytest.mark.parametrize(
        "query", ["bucket=year", "since=2026-02-01&until=2026-01-01", "days=0", "deployment=abc", "since=2020-01-01"]
    )
    def test_bad_filters_are_400(self, loaded: World, query: str) -> None:
        response = loaded.client_for("manager").get(f"{API}?{query}")
        assert response.status_code == 400, query
        assert response.json()["code"] == "invalid"

    def test_the_query_count_does_not_grow_with_the_data(
        self, loaded: World, django_assert_max_num_queries: Any
    ) -> None:
        client = loaded.client_for("key")
        with CaptureQueriesContext(connection) as small:
            client.get(f"{API}?{PERIOD}")
        data.insert(loaded.deployment, data.more_rows(60))
        with django_assert_max_num_queries(len(small.captured_queries)):
            assert client.get(f"{API}?{PERIOD}").status_code == 200

    def test_it_is_documented_in_the_openapi_schema(self, world: World) -> None:
        schema = world.client_for("manager").get("/api/schema/?format=json").json()
        operation = schema["paths"]["/api/v1/analytics/"]["get"]
        params = {p["name"] for p in operation["parameters"]}
        assert params >= {"deployment", "flow", "method", "reviewer", "since", "until", "days", "bucket"}
        assert "AnalyticsReport" in str(operation["responses"]["200"])
        audit = schema["paths"]["/api/v1/audit/"]["get"]
        assert {"format", "since", "until", "event_type", "request", "actor", "source"} <= {
            p["name"] for p in audit["parameters"]
        }
        assert set(audit["responses"]["200"]["content"]) == {"application/jsonl", "text/csv"}
