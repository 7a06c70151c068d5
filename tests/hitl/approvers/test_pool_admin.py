"""Several approvers in the admin (SPEC §13): the request's page shows its seats and the decisions so
far, read-only; a classic request's page has neither table."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from hitl import services
from tests.support.base import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def test_the_request_page_shows_seats_and_decisions_read_only(world: World, ops: Client) -> None:
    created = world.create(approvers=["ann@example.com", "bob@example.com"], policy="all")
    services.respond_to_request(
        created["id"],
        services.Answer(outcome="approved", feedback="fine by me"),
        responder="ann@example.com",
        source="api",
    )
    url = reverse("admin:hitl_hitlrequest_change", args=[created["id"]])
    page = ops.get(url).content.decode()
    assert "Approvers (several approvers" in page and "Decisions so far" in page
    assert page.count("bob@example.com") >= 1 and "fine by me" in page
    assert 'name="approver_seats-0-email"' not in page and 'name="decisions-0-outcome"' not in page
    classic = world.create()
    page = ops.get(reverse("admin:hitl_hitlrequest_change", args=[classic["id"]])).content.decode()
    assert "Decisions so far" not in page and "Approvers (several approvers" not in page


def test_the_request_page_costs_the_same_queries_for_2_or_12_seats(world: World, ops: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (2, 12):
        created = world.create(approvers=[f"a{i}@example.com" for i in range(size)], policy="any")
        services.respond_to_request(
            created["id"], services.Answer(outcome="approved"), responder="a0@example.com", source="api"
        )
        url = reverse("admin:hitl_hitlrequest_change", args=[created["id"]])
        ops.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert ops.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
