"""SPEC §2 (amended): `{"message": "…"}` alone is a request in text mode, answerable on every channel."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from hitl.models import HITLRequest, Resolution
from tests.support import esp_payloads as esp
from tests.support.base import World

pytestmark = pytest.mark.django_db

REVIEWER = "responder@example.com"


def create_message_only(world: World, **extra: object) -> dict:
    response = world.client_for("key").post(
        "/api/v1/requests/", {"message": "What should we fix?", **extra}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


class TestMessageOnlyRequest:
    def test_it_defaults_to_text_mode_and_returns_the_answer_in_text_and_feedback(self, world: World) -> None:
        created = create_message_only(world)
        assert (created["mode"], created["emit_options"], created["result"]["response_type"]) == ("text", [], "text")
        answered = world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"text": "Tighten the intro."}, format="json"
        )
        assert answered.status_code == 200, answered.content
        result = answered.json()
        assert (result["outcome"], result["text"], result["feedback"]) == (
            None,
            "Tighten the intro.",
            "Tighten the intro.",
        )

    def test_an_email_reply_is_the_typed_answer(self, world: World) -> None:
        mail.outbox.clear()
        created = create_message_only(world, assign_to=REVIEWER)
        reply_to = mail.outbox[0].reply_to[0]
        body = "Use the 2024 figures.\n\n" + esp.QUOTED_ORIGINAL
        assert esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body=body).status_code == 200
        result = Resolution.objects.get(request_id=created["id"]).result
        assert (result["text"], result["feedback"], result["source"]) == (
            "Use the 2024 figures.",
            "Use the 2024 figures.",
            "email",
        )

    def test_the_review_page_asks_for_a_typed_answer(self, world: World) -> None:
        created = create_message_only(world, assign_to=REVIEWER)
        client = Client()
        client.force_login(world.responder)
        page = client.get(f"/requests/{created['id']}/").content.decode()
        assert re.search(r'<textarea name="text"[^>]*required>', page)
        client.post(f"/requests/{created['id']}/answer/", {"text": "Ship it."})
        assert HITLRequest.objects.get(pk=created["id"]).status == "responded"
        assert Resolution.objects.get(request_id=created["id"]).result["text"] == "Ship it."

    def test_emit_still_needs_its_options_when_asked_for(self, world: World) -> None:
        response = world.client_for("key").post("/api/v1/requests/", {"message": "x", "mode": "emit"}, format="json")
        assert response.status_code == 400 and "emit_options" in response.json()["errors"]
