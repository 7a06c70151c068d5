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
from tests.base import World

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
