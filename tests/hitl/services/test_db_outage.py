"""While the database is unreachable the server answers 503 with `Retry-After` (JSON in the API's error
shape on /api/), not a 500 page: the client may retry, nothing was written.

The database fails for real: the test connection is pointed at a closed port (PostgreSQL) or at a file
in a directory that does not exist (SQLite), so the driver's own error travels through the views."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from hitl.models import HITLRequest
from tests.support.base import World

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: connections are refused


@contextmanager
def database_down() -> Iterator[None]:
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-hitl-dir/db.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


class TestDatabaseOutage:
    def test_it_answers_503_json_on_the_api(self, world: World) -> None:
        client = world.client_for("key")
        with database_down():
            response = client.post(
                "/api/v1/requests/", {"message": "Pay?", "emit_options": ["approved"]}, format="json"
            )
            listing = client.get("/api/v1/requests/")
        for answer in (response, listing):
            assert answer.status_code == 503
            assert answer["Content-Type"] == "application/json"
            assert answer.json()["code"] == "database_unavailable"
            assert answer.json()["detail"]
            assert answer["Retry-After"] == "5"
        assert not HITLRequest.objects.exists()  # and the database is back: nothing was written

    def test_it_answers_a_plain_503_on_pages(self, world: World) -> None:
        client = Client()
        client.force_login(world.responder)
        with database_down():
            response = client.get("/inbox/")
        assert response.status_code == 503
        assert response["Content-Type"].startswith("text/plain")
        assert response["Retry-After"] == "5"
        assert b"unavailable" in response.content

    def test_other_errors_are_still_500s(self, world: World, monkeypatch: Any) -> None:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug, not an outage")

        monkeypatch.setattr("hitl.services.create_request", broken)
        response = Client(raise_request_exception=False).post(
            "/api/v1/requests/",
            {"message": "Pay?", "emit_options": ["approved"]},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {world.key}",
        )
        assert response.status_code == 500
        assert response.json()["code"] == "server_error"


class TestNotificationDuringOutage:
    """A notification task that meets an unreachable database is queued again, not lost (django-q2
    never retries a failed task, and email has no outbox row for the sweeper to find)."""

    EMAIL = "hitl.channels.email.EmailChannel"

    def test_it_queues_itself_again_and_sends_once_the_database_is_back(
        self, world: World, monkeypatch: Any, mailoutbox: list[Any]
    ) -> None:
        from hitl import tasks

        request_id = world.create(assign_to="responder@example.com")["id"]
        HITLRequest.objects.filter(pk=request_id).update(notified_at=None)
        mailoutbox.clear()
        queued: list[tuple[Any, ...]] = []
        monkeypatch.setattr(tasks, "NOTIFY_RETRY_DELAYS", (0, 0))
        monkeypatch.setattr(tasks, "enqueue", lambda *args: queued.append(args))

        with database_down():
            tasks.notify_channel(self.EMAIL, request_id, "new_request")
        assert queued == [("hitl.tasks.notify_channel", self.EMAIL, request_id, "new_request", 1, 0)]
        assert mailoutbox == []

        tasks.notify_channel(*queued[0][1:])  # the database is back: the queued attempt sends
        assert [m.to for m in mailoutbox] == [["responder@example.com"]]
        assert HITLRequest.objects.get(pk=request_id).notified_at is not None

    def test_it_gives_up_loudly_after_the_last_attempt(self, world: World, monkeypatch: Any) -> None:
        from django.db import OperationalError

        from hitl import tasks

        request_id = world.create()["id"]
        monkeypatch.setattr(tasks, "NOTIFY_RETRY_DELAYS", (0, 0))
        monkeypatch.setattr(tasks, "enqueue", lambda *args: pytest.fail("no attempt after the last"))
        with database_down(), pytest.raises(OperationalError):
            tasks.notify_channel(self.EMAIL, request_id, "new_request", 2)
