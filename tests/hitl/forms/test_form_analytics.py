"""Analytics of typed forms (SPEC §14): the distribution of each enum and yes/no field's answers, on
the analytics page and in its API, with a query count that does not grow with the requests."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.hitl.forms.support import form_payload
from tests.support.base import World

pytestmark = pytest.mark.django_db


def answer_forms(world: World, answers: list[tuple[str, bool]]) -> None:
    client = world.client_for("key")
    for risk, approved in answers:
        created = client.post("/api/v1/requests/", form_payload(), format="json").json()
        data = {"vendor": "Acme", "risk": risk, "amount": 5, "approved": approved}
        response = client.post(f"/api/v1/requests/{created['id']}/respond/", {"data": data}, format="json")
        assert response.status_code == 200, response.content
    # Not counted: a form still pending, and another mode's answer.
    client.post("/api/v1/requests/", form_payload(), format="json")
    world.create()


def manager(world: World) -> Client:
    client = Client()
    client.force_login(world.manager)
    return client


class TestFormAnalytics:
    def test_the_api_and_the_page_show_per_field_distributions(self, world: World) -> None:
        answer_forms(world, [("high", True), ("low", False), ("high", False)])
        report = manager(world).get("/api/v1/analytics/").json()
        rows = [(r["field"], r["value"], r["count"]) for r in report["form_fields"]]
        assert rows == [("risk", "high", 2), ("risk", "low", 1), ("approved", "no", 2), ("approved", "yes", 1)]
        assert report["form_fields"][0]["label"] == "Risk" and report["form_fields"][0]["share"] == pytest.approx(2 / 3)

        html = manager(world).get("/analytics/").content.decode()
        assert 'id="table-form_fields"' in html and "Form answers" in html
        download = manager(world).get("/analytics/form_fields.csv")
        lines = b"".join(download.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
        assert lines[:2] == ["label,field,value,count,share", "Risk,risk,high,2,0.6666666666666666"]

    def test_the_query_count_does_not_grow_with_the_requests(
        self, world: World, django_assert_max_num_queries: Any
    ) -> None:
        answer_forms(world, [("high", True)])
        client = manager(world)
        connection.queries_log.clear()  # a full log (9000 entries) would capture nothing
        with CaptureQueriesContext(connection) as small:
            assert client.get("/api/v1/analytics/").status_code == 200
        baseline = len(small.captured_queries)  # now: the log moves on
        assert baseline
        answer_forms(world, [("low", False)] * 8 + [("medium", True)] * 4)
        with django_assert_max_num_queries(baseline):
            report = client.get("/api/v1/analytics/").json()
        assert sum(r["count"] for r in report["form_fields"] if r["field"] == "risk") == 13


class TestAnalyticsIds:
    def test_a_deployment_id_beyond_64_bits_is_a_400(self, world: World) -> None:
        for bad in ("33866520128575614976", "²"):
            response = manager(world).get(f"/api/v1/analytics/?deployment={bad}")
            assert response.status_code == 400, (bad, response.content)
