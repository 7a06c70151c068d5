"""The hot paths of issue 8's throughput bench (bench/throughput.py) stay lean: creating and answering a
request through the API and the callback URL take a pinned number of queries, and the hand-rolled
fast path of RequestSerializer renders exactly what DRF's generic one does."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from rest_framework import serializers

from hitl.api.serializers import RequestSerializer
from hitl.models import HITLRequest, NotificationDelivery
from tests.support.base import World

pytestmark = pytest.mark.django_db

# Savepoints (the test runs inside a transaction) count. Lower these when you can; raise them only with a
# reason. Issue 16: an audit append is one INSERT (no chain lock, no read of the chain's end). Issue 21
# (SPEC §19): the analytics rollups are kept in the same transaction: one statement on PostgreSQL (the
# rollup rows' upsert is a CTE that the histogram cell's and the answer's upserts join), one per table on
# SQLite (no INSERT in a CTE there): the counts, the response-time cell, the outcome and source — so a
# human answer takes two queries more on SQLite. Issue 21: the notification outbox row is one INSERT;
# an answer looks for a waiting flow run only when the request has a flow_id.
ROLLUP_EXTRA = 0 if connection.vendor == "postgresql" else 2
CREATE_QUERIES = 7
RESPOND_QUERIES = 8 + ROLLUP_EXTRA
CALLBACK_QUERIES = 7 + ROLLUP_EXTRA


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Tasks are recorded, not run inline: the counts are the web request's own."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr("hitl.channels.outbox.enqueue", lambda *args: calls.append(args))
    return calls


class TestQueryCounts:
    def test_it_creates_a_request_in_few_queries(
        self, world: World, enqueued: list[tuple[Any, ...]], django_assert_max_num_queries: Any
    ) -> None:
        client = world.client_for("key")
        body = {"message": "Please review", "emit_options": ["approved", "rejected"], "method_name": "review_x"}
        client.post("/api/v1/requests/", body, format="json")  # warm-up (last_used_at is written once a minute)
        with django_assert_max_num_queries(CREATE_QUERIES):
            response = client.post("/api/v1/requests/", body, format="json")
        assert response.status_code == 201, response.content
        # The notification is in the outbox, committed with the request; its task goes on the queue.
        row = NotificationDelivery.objects.get(request_id=response.json()["id"])
        assert row.channel == "hitl.channels.email.EmailChannel" and row.event == "new_request"
        assert enqueued[-1] == ("hitl.tasks.deliver_notification", row.pk)

    def test_it_answers_through_the_api_in_few_queries(
        self, world: World, enqueued: list[tuple[Any, ...]], django_assert_max_num_queries: Any
    ) -> None:
        created = world.create()
        client = world.client_for("key")
        with django_assert_max_num_queries(RESPOND_QUERIES):
            response = client.post(f"/api/v1/requests/{created['id']}/respond/", {"outcome": "approved"}, format="json")
        assert response.status_code == 200, response.content
        assert HITLRequest.objects.get(pk=created["id"]).status == "responded"

    def test_it_answers_through_the_callback_url_in_few_queries(
        self, world: World, enqueued: list[tuple[Any, ...]], django_assert_max_num_queries: Any
    ) -> None:
        created = world.create()
        path = created["callback_url"].split("://", 1)[1].split("/", 1)[1]
        with django_assert_max_num_queries(CALLBACK_QUERIES):
            response = world.client_for("anonymous").post(
                f"/{path}", {"feedback": "approved", "source": "bench"}, format="json"
            )
        assert response.status_code == 200, response.content
        assert response.json()["outcome"] == "approved"


class TestRequestSerializerFastPath:
    def test_it_renders_what_the_generic_serializer_renders(self, world: World) -> None:
        world.create(method_name="review_x", content="# Draft", state={"a": {"b": 1}}, metadata={"m": [1, 2]})
        client = world.client_for("key")
        for body in (
            {"mode": "approval", "timeout": 60, "default_outcome": "approved", "link_ttl": 120},
            {
                "mode": "choices",
                "options": [{"title": "One"}, {"title": "Two"}],
                "label_path": "title",
                "multiple": True,
                "assign_to": "Someone@Example.com",
            },
            {"mode": "text", "editable": True, "flow_id": "run-1", "flow_name": "pipeline"},
        ):
            response = client.post("/api/v1/requests/", {"message": "Please review", **body}, format="json")
            assert response.status_code == 201, response.content
        answered = world.create()
        world.client_for("key").post(f"/api/v1/requests/{answered['id']}/respond/", {"outcome": "rejected"})
        requests = list(HITLRequest.objects.select_related("resolution"))
        assert len(requests) == 5
        for request in requests:
            full = {"principal": world.manager}  # entitled to the callback URL, as the key below
            fast = RequestSerializer(request, context=full).data
            generic = serializers.ModelSerializer.to_representation(RequestSerializer(request, context=full), request)
            assert fast == generic
            assert list(fast) == list(generic)
        listed = world.client_for("key").get("/api/v1/requests/").json()["results"]
        assert {r["id"]: r for r in listed} == {
            str(r.pk): serializers.ModelSerializer.to_representation(
                RequestSerializer(r, context={"principal": world.manager}), r
            )
            for r in requests
        }
