"""Personas shared by the tests: a manager, a responder, a stranger, an outside emailer, and API keys.

`World` builds two deployments so every permission test can check "other deployment → 404".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.models import ApiKey, Deployment
from accounts.services import create_api_key, create_deployment

User = get_user_model()

OUTSIDE_EMAILER = "outsider@partner.example"


@dataclass
class World:
    deployment: Deployment
    other: Deployment
    manager: Any
    responder: Any
    stranger: Any
    key: str
    read_key: str
    other_key: str

    def client_for(self, who: str) -> APIClient:
        client = APIClient()
        if who in ("key", "read_key", "other_key"):
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {getattr(self, who)}")
        elif who != "anonymous":
            client.force_authenticate(getattr(self, who))
        return client

    def create(self, who: str = "key", **payload: Any) -> dict[str, Any]:
        body = {"message": "Please review", "emit_options": ["approved", "rejected"], **payload}
        if who not in ("key", "read_key", "other_key"):
            body.setdefault("deployment", self.deployment.pk)
        response = self.client_for(who).post("/api/v1/requests/", body, format="json")
        assert response.status_code == 201, response.content
        return response.json()


def build_world() -> World:
    deployment = create_deployment(name="Content Review", creator_email="creator@example.com", organization="Acme")
    other = create_deployment(name="Elsewhere", creator_email="boss@other.example", organization="Other")
    manager = User.objects.create_user("manager", "manager@example.com", "pw")
    responder = User.objects.create_user("responder", "responder@example.com", "pw")
    stranger = User.objects.create_user("stranger", "stranger@example.com", "pw")
    assign_perm("accounts.manage_human_feedback", manager, deployment)
    assign_perm("accounts.respond_to_human_feedback", responder, deployment)
    _, key = create_api_key(deployment, name="full")
    _, read_key = create_api_key(deployment, name="read", access=ApiKey.Access.READ)
    _, other_key = create_api_key(other, name="other")
    return World(deployment, other, manager, responder, stranger, key, read_key, other_key)
