"""What keeps the inbox and the list endpoint cheap with a million requests (bench/RESULTS.md):
capped counts, pagination that does not count everything, lower-case assignees, flat query counts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from hitl.lib.counting import CappedCount, capped_count, capped_counts
from hitl.models import HITLRequest, Status
from tests.support.base import World, build_world

RESPONDER = "responder@example.com"


@pytest.fixture
def world(db: Any) -> World:
    return build_world()


def make_requests(world: World, n: int, **fields: Any) -> None:
    """n pending requests in the world's deployment, inserted in bulk (the services are tested elsewhere)."""
    HITLRequest.objects.bulk_create(
        [
            HITLRequest(
                deployment=world.deployment,
                message=f"Bulk {i}",
                assigned_to_email=fields.get("assigned_to_email", RESPONDER),
                assignment_step="explicit",
                status=fields.get("status", Status.PENDING),
            )
            for i in range(n)
        ]
    )


def manager_client(world: World) -> Client:
    client = Client()
    client.force_login(world.manager)
    return client


class TestCappedCounts:
    def test_it_counts_exactly_up_to_the_cap_and_says_more_beyond(self, world: World) -> None:
        make_requests(world, 7)
        assert capped_count(HITLRequest.objects.all(), 10) == CappedCount(7, False)
        assert capped_count(HITLRequest.objects.all(), 7) == CappedCount(7, False)
        assert capped_count(HITLRequest.objects.all(), 5) == CappedCount(5, True)
        assert str(CappedCount(1000, True)) == "1,000+" and str(CappedCount(12, False)) == "12"

    def test_it_counts_several_querysets_in_one_query(self, world: World, django_assert_num_queries: Any) -> None:
        make_requests(world, 4)
        make_requests(world, 2, status=Status.CANCELLED)
        everything = HITLRequest.objects.all()
        with django_assert_num_queries(1):
            counts = capped_counts(
                {
                    "all": everything,
                    "pending": everything.filter(status=Status.PENDING),
                    "none": everything.filter(pk__in=[]),  # matches nothing: no SQL at all
                },
                cap=3,
            )
        assert counts == {"all": CappedCount(3, True), "pending": CappedCount(3, True), "none": CappedCount(0, False)}
        assert capped_counts({"cancelled": everything.filter(status=Status.CANCELLED)}, cap=3) == {
            "cancelled": CappedCount(2, False)
        }


class TestInboxAtScale:
    def test_tabs_and_pager_say_more_than_the_cap_rather_than_counting_everything(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("hitl.views.inbox.TAB_CAP", 30)
        make_requests(world, 40)
        page = manager_client(world).get("/inbox/").content.decode()
        assert re.search(r'Pending <span class="count">30\+</span>', page)
        assert "1–25 of 30+" in page
        last = manager_client(world).get("/inbox/?page=2").content.decode()
        assert "26–30 of 30+" in last and "narrow the filters" in last and 'rel="next"' not in last

    def test_the_inbox_costs_the_same_number_of_queries_with_more_requests(
        self, world: World, django_assert_max_num_queries: Any
    ) -> None:
        client = manager_client(world)
        make_requests(world, 3)
        client.get("/inbox/?status=all")  # warm the session and content types
        with django_assert_max_num_queries(11) as few:
            client.get("/inbox/?status=all")
        make_requests(world, 60)
        with django_assert_max_num_queries(len(few.captured_queries)):
            client.get("/inbox/?status=all")


class TestListPagination:
    def test_count_is_exact_below_the_cap_and_null_above_it_and_next_still_works(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_requests(world, 12)
        api = world.client_for("key")
        body = api.get("/api/v1/requests/?limit=5").json()
        assert body["count"] == 12 and len(body["results"]) == 5 and "offset=5" in body["next"]
        monkeypatch.setattr("hitl.lib.api.pagination.COUNT_CAP", 10)
        body = api.get("/api/v1/requests/?limit=5").json()
        assert body["count"] is None and "offset=5" in body["next"]
        seen = []
        url: str | None = "/api/v1/requests/?limit=5"
        while url:
            page = api.get(url).json()
            seen += [r["id"] for r in page["results"]]
            url = page["next"]
        assert len(seen) == len(set(seen)) == 12
        assert page["count"] == 12  # the last page reached the end, so the total is known again
        beyond = api.get("/api/v1/requests/?limit=5&offset=50").json()
        assert beyond["results"] == [] and beyond["next"] is None and beyond["count"] is None

    def test_the_list_costs_the_same_number_of_queries_with_more_requests(
        self, world: World, django_assert_max_num_queries: Any
    ) -> None:
        api = world.client_for("manager")
        make_requests(world, 3)
        api.get("/api/v1/requests/")
        with django_assert_max_num_queries(8) as few:
            api.get("/api/v1/requests/?limit=2")
        make_requests(world, 60)
        with django_assert_max_num_queries(len(few.captured_queries)):
            assert len(api.get("/api/v1/requests/?limit=50").json()["results"]) == 50

    def test_a_page_holds_at_most_500(self, world: World) -> None:
        make_requests(world, 3)
        body = world.client_for("key").get("/api/v1/requests/?limit=100000").json()
        assert body["count"] == 3 and "limit=100000" not in (body["next"] or "")

    def test_the_schema_says_count_may_be_null(self, world: World) -> None:
        schema = world.client_for("manager").get("/api/schema/?format=json").json()
        count = schema["components"]["schemas"]["PaginatedRequestList"]["properties"]["count"]
        assert count["nullable"] is True


class TestLowerCaseAssignees:
    def test_assignees_are_stored_lower_case_whatever_the_input(self, world: World) -> None:
        created = world.create(assign_to="Reviewer@Example.COM")
        req = HITLRequest.objects.get(pk=created["id"])
        assert req.assigned_to_email == "reviewer@example.com"
        response = world.client_for("manager").post(
            f"/api/v1/requests/{req.pk}/reassign/", {"email": "Lead@Example.com"}, format="json"
        )
        assert response.status_code == 200, response.content
        req.refresh_from_db()
        assert req.assigned_to_email == "lead@example.com"

    def test_assigned_to_filter_matches_any_case_with_an_indexed_equality(self, world: World) -> None:
        world.create(assign_to=RESPONDER)
        api = world.client_for("key")
        assert api.get("/api/v1/requests/?assigned_to=Responder@Example.com").json()["count"] == 1
        with CaptureQueriesContext(connection) as queries:
            api.get("/api/v1/requests/?assigned_to=Responder@Example.com")
        assert not any("UPPER(" in q["sql"] for q in queries.captured_queries)


class TestInboxSearch:
    def test_a_search_lists_its_few_matches_newest_first(self, world: World) -> None:
        make_requests(world, 5)
        for i in range(3):
            world.create(message=f"Invoice Q{i} for ACME", assign_to=RESPONDER)
        page = manager_client(world).get("/inbox/?status=all&q=acme").content.decode()
        assert re.search(r'All <span class="count">3</span>', page)
        assert page.index("Invoice Q2") < page.index("Invoice Q1") < page.index("Invoice Q0")
        assert "Bulk 0" not in page

    def test_search_has_trigram_indexes_on_postgresql(self, world: World) -> None:
        if connection.vendor != "postgresql":
            pytest.skip("trigram indexes are PostgreSQL's")
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'hitl_search_%%'")
            indexes = dict(cursor.fetchall())
        assert set(indexes) == {
            "hitl_search_message_trgm",
            "hitl_search_flow_name_trgm",
            "hitl_search_method_name_trgm",
            "hitl_search_assignee_trgm",
        }
        assert "gin_trgm_ops" in indexes["hitl_search_message_trgm"]
        assert "upper(message)" in indexes["hitl_search_message_trgm"]
