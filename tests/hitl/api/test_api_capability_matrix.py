"""Generated matrix (SPEC §10): every API endpoint × every kind of principal — which status it gets and
whether a capability that can act (a callback URL, a magic link) appears anywhere in the response."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

from flows.models import DeploymentFlow
from hitl.models import HITLRequest, Resolution
from tests.support import sample_flows  # noqa: F401  (registers the test flows)
from tests.support.base import World

pytestmark = pytest.mark.django_db

PRINCIPALS = ["key", "read_key", "other_key", "manager", "responder", "stranger"]
# Who may hold a capability for the world's deployment: its full key and its manager (SPEC §10).
ENTITLED = {"key", "manager"}
CAPABILITY = re.compile(r"/api/v1/callbacks/|/r/[0-9a-f-]{36}/")

# endpoint → expected status per principal (in PRINCIPALS order)
MATRIX: dict[str, tuple[int, ...]] = {
    "list": (200, 200, 200, 200, 200, 200),
    "detail": (200, 200, 404, 200, 200, 404),
    "result": (200, 200, 404, 200, 200, 404),
    "respond": (200, 403, 404, 403, 200, 404),
    "cancel": (200, 403, 404, 200, 403, 404),
    "reassign": (200, 403, 404, 200, 403, 404),
    "create": (201, 403, 201, 201, 403, 404),
    "execution": (200, 200, 404, 200, 200, 404),
    "kickoff": (202, 403, 404, 202, 403, 404),
    "analytics": (200, 200, 200, 200, 403, 403),
    "audit": (200, 200, 200, 200, 403, 403),
}
CASES = [
    (endpoint, who, code) for endpoint, codes in MATRIX.items() for who, code in zip(PRINCIPALS, codes, strict=True)
]


def _client(world: World, who: str) -> APIClient:
    client = world.client_for(who)
    if who in ("manager", "responder", "stranger"):
        client.force_authenticate(None)
        client.force_login(getattr(world, who))  # a real session, as the pages use
    return client


def _call(world: World, endpoint: str, who: str) -> Any:
    request_id = world.create(assign_to="responder@example.com")["id"]
    DeploymentFlow.objects.create(deployment=world.deployment, flow_name="content_approval")
    run_id = (
        world.client_for("key")
        .post(f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": "content_approval"}, format="json")
        .json()["execution_id"]
    )
    client = _client(world, who)
    base = f"/api/v1/requests/{request_id}/"
    if endpoint == "list":
        return client.get("/api/v1/requests/")
    if endpoint == "detail":
        return client.get(base)
    if endpoint == "result":
        return client.get(f"{base}result/")
    if endpoint in ("respond", "cancel", "reassign"):
        action = {"respond": {"outcome": "approved"}, "cancel": {}, "reassign": {"email": "x@example.com"}}[endpoint]
        return client.post(f"{base}{endpoint}/", action, format="json")
    if endpoint == "create":
        body: dict[str, Any] = {"message": "Another", "emit_options": ["approved", "rejected"]}
        if who in ("manager", "responder", "stranger"):
            body["deployment"] = world.deployment.pk
        return client.post("/api/v1/requests/", body, format="json")
    if endpoint == "execution":
        return client.get(f"/api/v1/executions/{run_id}/")
    if endpoint == "kickoff":
        return client.post(
            f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": "content_approval"}, format="json"
        )
    if endpoint == "analytics":
        return client.get("/api/v1/analytics/")
    return client.get("/api/v1/audit/?format=jsonl")


def _body(response: Any) -> str:
    if hasattr(response, "streaming_content"):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


class TestCapabilityMatrix:
    @pytest.mark.parametrize(("endpoint", "who", "code"), CASES)
    def test_it_answers_each_principal_as_the_matrix_says(self, world: World, endpoint: str, who: str, code: int):
        response = _call(world, endpoint, who)
        assert response.status_code == code, _body(response)

    # (The other deployment's key creating in its own deployment is entitled to that request's URL.)
    @pytest.mark.parametrize(
        ("endpoint", "who", "code"), [c for c in CASES if c[1] not in ENTITLED and c[:2] != ("create", "other_key")]
    )
    def test_it_never_shows_a_capability_to_those_who_may_not_act(
        self, world: World, endpoint: str, who: str, code: int
    ):
        response = _call(world, endpoint, who)
        assert not CAPABILITY.search(_body(response)), (endpoint, who)

    @pytest.mark.parametrize("endpoint", ["list", "detail", "cancel", "reassign", "create", "execution"])
    @pytest.mark.parametrize("who", sorted(ENTITLED))
    def test_it_shows_the_callback_url_to_full_keys_and_managers(self, world: World, endpoint: str, who: str):
        response = _call(world, endpoint, who)
        assert "/api/v1/callbacks/" in _body(response), (endpoint, who)


class TestCallbackPrincipal:
    def test_it_records_the_callback_app_not_the_declared_source(self, world: World) -> None:
        created = world.create()
        path = urlparse(created["callback_url"]).path
        response = APIClient().post(path, {"outcome": "approved", "source": "manager@example.com"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["responder"] == "callback:Content Review"
        assert response.json()["metadata"]["callback_source"] == "manager@example.com"
        assert Resolution.objects.get(request_id=created["id"]).responder == "callback:Content Review"

    def test_it_keeps_the_callback_url_valid_across_reassignment(self, world: World) -> None:
        created = world.create(assign_to="responder@example.com")
        world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/reassign/", {"email": "other@example.com"}, format="json"
        )
        path = urlparse(created["callback_url"]).path
        assert APIClient().post(path, {"outcome": "approved"}, format="json").status_code == 200
        assert HITLRequest.objects.get(pk=created["id"]).status == "responded"
