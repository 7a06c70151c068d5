"""`POST {callback_url}` answers like any channel; the signature in the URL is the authority."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

from tests.support.base import World

pytestmark = pytest.mark.django_db


class TestCallbackUrl:
    def test_it_answers_with_emit_matching_and_keeps_the_source(self, world: World) -> None:
        created = world.create()
        path = urlparse(created["callback_url"]).path
        response = APIClient().post(
            path, {"feedback": "Approved. Great article!", "source": "my_custom_app"}, format="json"
        )
        assert response.status_code == 200, response.content
        result = response.json()
        assert (result["outcome"], result["feedback"], result["source"]) == ("approved", "Great article!", "api")
        assert result["metadata"]["callback_source"] == "my_custom_app"
        late = APIClient().post(path, {"feedback": "rejected"}, format="json")
        assert late.status_code == 409 and late.json()["code"] == "not_pending"

    def test_a_tampered_or_foreign_signature_is_refused(self, world: World) -> None:
        first, second = world.create(), world.create()
        path = urlparse(first["callback_url"]).path
        expires, mac = path.rstrip("/").split("/")[-1].split(".")
        tampered = path.replace(mac, ("a" if mac[0] != "a" else "b") + mac[1:])
        foreign = urlparse(second["callback_url"]).path.replace(second["id"], first["id"])
        for bad in (tampered, foreign):
            response = APIClient().post(bad, {"feedback": "approved"}, format="json")
            assert response.status_code == 403 and response.json()["code"] == "bad_signature"

    def test_an_expired_signature_is_refused(self, world: World, settings) -> None:
        settings.HITL_CALLBACK_TTL = -10
        created = world.create()
        response = APIClient().post(urlparse(created["callback_url"]).path, {"feedback": "approved"}, format="json")
        assert response.status_code == 403 and response.json()["code"] == "expired_signature"
