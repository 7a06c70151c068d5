"""GET /api/v1/version/ (SPEC §17): the release number, public, in the OpenAPI schema."""

from __future__ import annotations

from django.test import Client

import hitl
from tests.support.base import World


class TestVersion:
    def test_it_answers_without_credentials(self, db: None) -> None:
        response = Client().get("/api/v1/version/")
        assert response.status_code == 200
        assert response.json() == {"version": hitl.__version__}

    def test_it_ignores_a_wrong_key_rather_than_refusing(self, db: None) -> None:
        response = Client().get("/api/v1/version/", HTTP_AUTHORIZATION="Bearer hitl_not-a-key")
        assert (response.status_code, response.json()) == (200, {"version": hitl.__version__})

    def test_it_answers_a_key_the_same(self, world: World) -> None:
        assert world.client_for("read_key").get("/api/v1/version/").json() == {"version": hitl.__version__}

    def test_it_refuses_writes(self, db: None) -> None:
        response = Client().post("/api/v1/version/", {"version": "9"})
        assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"

    def test_it_is_in_the_schema_without_security(self, world: World) -> None:
        schema = world.client_for("manager").get("/api/schema/?format=json").json()
        operation = schema["paths"]["/api/v1/version/"]["get"]
        assert operation["operationId"] == "version"
        assert "security" not in operation and "security" not in schema  # no scheme needed (others list two)
        version = schema["components"]["schemas"]["Version"]
        assert version["properties"]["version"]["type"] == "string"
