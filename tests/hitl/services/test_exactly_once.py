"""Exactly once under a real race: concurrent answers from several channels on PostgreSQL."""

from __future__ import annotations

import threading
from urllib.parse import urlparse

import pytest
from django.db import connection, connections

from audit.models import AuditEvent
from audit.services import verify_chain
from hitl.models import HITLRequest, Resolution
from tests.support.base import build_world

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a real row-lock race needs PostgreSQL (runs in CI's second pass)"
)


@postgres_only
@pytest.mark.django_db(transaction=True)
class TestConcurrentAnswers:
    def test_it_records_one_resolution_and_refuses_the_rest(self) -> None:
        world = build_world()
        created = world.create(assign_to="responder@example.com")
        request_id = created["id"]
        callback_path = urlparse(created["callback_url"]).path
        attempts = 12
        barrier = threading.Barrier(attempts)
        statuses: list[int] = []
        lock = threading.Lock()

        def answer(index: int) -> None:
            try:
                kind = index % 4
                client = world.client_for("responder" if kind == 3 else "key")
                barrier.wait(timeout=10)
                if kind == 0:
                    response = client.post(
                        f"/api/v1/requests/{request_id}/respond/", {"outcome": "approved"}, format="json"
                    )
                elif kind == 1:
                    response = client.post(f"/api/v1/requests/{request_id}/cancel/", {}, format="json")
                elif kind == 2:
                    response = client.post(callback_path, {"feedback": "rejected. no", "source": "app"}, format="json")
                else:
                    response = client.post(
                        f"/api/v1/requests/{request_id}/respond/", {"outcome": "rejected"}, format="json"
                    )
                with lock:
                    statuses.append(response.status_code)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=answer, args=(i,)) for i in range(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert sorted(statuses) == [200] + [409] * (attempts - 1), statuses
        assert Resolution.objects.filter(request_id=request_id).count() == 1
        assert HITLRequest.objects.get(pk=request_id).status in ("responded", "cancelled")
        refused = AuditEvent.objects.filter(event_type="response.refused", target_id=request_id).count()
        assert refused == attempts - 1
        assert verify_chain()[1] is None


@pytest.mark.django_db
class TestDatabaseBackstop:
    def test_a_second_resolution_row_is_refused_by_the_database(self) -> None:
        """Even a writer that skipped the compare-and-set cannot record a second resolution."""
        from django.db import IntegrityError, transaction

        world = build_world()
        request_id = world.create()["id"]
        world.client_for("key").post(f"/api/v1/requests/{request_id}/respond/", {"outcome": "approved"}, format="json")
        with pytest.raises(IntegrityError), transaction.atomic():
            Resolution.objects.create(request_id=request_id, status="cancelled", source="api", result={})
