"""No 500s from input (issue 14): deep JSON, lone surrogates and NUL, far dates, oversized bodies get a
400 in the API's error shape, on every JSON endpoint and the callback URL."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

from hitl.models import HITLRequest
from tests.support.base import World

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
NESTED_OBJECT = '{"a":' * 200 + "1" + "}" * 200
BODIES = {
    "deep_list": '{"message": "x", "emit_options": ["a"], "state": {"x": ' + DEEP + "}}",
    "nested_object": '{"message": "x", "emit_options": ["a"], "state": ' + NESTED_OBJECT + "}",
    "lone_surrogate": '{"message": "x \\ud800", "emit_options": ["a"]}',
    "surrogate_key": '{"message": "x", "emit_options": ["a"], "metadata": {"\\udfff": 1}}',
    "nul": '{"message": "x\\u0000y", "emit_options": ["a"]}',
}


def _paths(world: World) -> list[str]:
    created = world.create()
    return [
        "/api/v1/requests/",
        f"/api/v1/requests/{created['id']}/respond/",
        f"/api/v1/requests/{created['id']}/cancel/",
        f"/api/v1/requests/{created['id']}/reassign/",
        f"/api/v1/deployments/{world.deployment.pk}/kickoff/",
        f"/api/v1/deployments/{world.deployment.pk}/resume/",
        urlparse(created["callback_url"]).path,
    ]


class TestHostileJson:
    @pytest.mark.parametrize("body", sorted(BODIES))
    def test_it_answers_400_on_every_json_endpoint(self, world: World, body: str) -> None:
        for path in _paths(world):
            client = world.client_for("key")
            response = client.post(path, BODIES[body], content_type="application/json")
            assert response.status_code == 400, (path, body, response.content[:200])
            assert {"detail", "code"} <= set(response.json()), path
        assert not HITLRequest.objects.filter(status="cancelled").exists()

    def test_it_answers_400_for_a_body_over_the_limit(self, world: World, settings) -> None:
        settings.HITL_MAX_BODY_BYTES = 10_000
        body = '{"message": "' + "x" * 20_000 + '", "emit_options": ["a"]}'
        response = world.client_for("key").post("/api/v1/requests/", body, content_type="application/json")
        assert response.status_code == 400 and response.json()["code"] == "too_large"


class TestFarDates:
    @pytest.mark.parametrize(
        "value", ["9999-12-31T23:59:59Z", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00", "9999-99-99"]
    )
    def test_it_answers_400_or_200_never_500(self, world: World, value: str) -> None:
        for param in ("created_after", "created_before"):
            response = APIClient()
            response.credentials(HTTP_AUTHORIZATION=f"Bearer {world.key}")
            answer = response.get("/api/v1/requests/", {param: value})
            assert answer.status_code in (200, 400), (param, value)
            if answer.status_code == 400:
                assert answer.json()["code"] == "invalid"


class TestHostileTelegramUpdate:
    def test_it_answers_400_to_deeply_nested_json(self, world: World) -> None:
        from django.test import Client

        from hitl.channels import telegram

        response = Client().post(
            f"/telegram/{world.deployment.pk}/webhook/",
            '{"update_id": 1, "x": ' + DEEP + "}",
            content_type="application/json",
            HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=telegram.webhook_secret(world.deployment.pk),
        )
        assert response.status_code == 400 and response.json()["code"] == "invalid"
