"""`result/?wait=`: answers as soon as the request resolves, holds no database connection while it
waits, and allows only a few concurrent waits per key (issue 14)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from tests.support.base import World

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_in_thread(world: World, request_id: str, seconds: int, out: list) -> threading.Thread:
    def run() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key}")
            response = client.get(f"/api/v1/requests/{request_id}/result/?wait={seconds}")
            out.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def _until_slots_taken(slots: int, out: list | None = None) -> None:
    from hitl.models import ThrottleCounter

    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        if ThrottleCounter.objects.filter(key__startswith="long-poll:", count__gte=slots).exists():
            return
        time.sleep(0.05)
    taken = list(ThrottleCounter.objects.filter(key__startswith="long-poll:").values_list("key", "count"))
    raise AssertionError(f"{slots} waits never started (slots {taken}, answers so far {out})")


class TestLongPoll:
    def test_it_returns_as_soon_as_the_request_is_answered(self, world: World) -> None:
        request_id = world.create()["id"]
        out: list = []
        thread = _wait_in_thread(world, request_id, 20, out)
        time.sleep(1.5)
        world.client_for("key").post(f"/api/v1/requests/{request_id}/respond/", {"outcome": "approved"}, format="json")
        started = time.monotonic()
        thread.join(10)
        assert time.monotonic() - started < 3
        assert out[0][0] == 200 and out[0][1]["outcome"] == "approved"

    def test_it_limits_concurrent_waits_per_key(self, world: World, settings) -> None:
        settings.HITL_MAX_WAITS_PER_KEY = 2
        request_id = world.create()["id"]
        out: list = []
        threads = [_wait_in_thread(world, request_id, 8, out) for _ in range(2)]
        _until_slots_taken(2, out)  # (a loaded machine may take a while to start both threads' waits)
        response = world.client_for("key").get(f"/api/v1/requests/{request_id}/result/?wait=4")
        assert response.status_code == 429 and response.json()["code"] == "too_many_waits"
        assert world.client_for("key").get(f"/api/v1/requests/{request_id}/result/").status_code == 200
        for thread in threads:
            thread.join(15)
        assert [code for code, _ in out] == [200, 200]
        # The slots are given back: a new wait is accepted.
        assert world.client_for("key").get(f"/api/v1/requests/{request_id}/result/?wait=1").status_code == 200

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL backends")
    def test_it_holds_no_database_connection_while_waiting(self, world: World) -> None:
        request_id = world.create()["id"]
        idle = _backends()
        out: list = []
        threads = [_wait_in_thread(world, request_id, 4, out) for _ in range(3)]
        time.sleep(2.0)
        during = []
        for _ in range(5):
            during.append(_backends())
            time.sleep(0.2)
        for thread in threads:
            thread.join(10)
        assert min(during) <= idle  # three waits, no extra backend between their polls
