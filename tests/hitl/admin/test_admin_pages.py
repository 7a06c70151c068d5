"""Every admin list and change page renders for ops staff (a smoke test over real data)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from audit.models import AuditEvent
from hitl.models import HITLRequest, InboundEmail, RoutingRule
from hitl.services import add_routing_rule
from tests.support.base import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(world: World) -> Client:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client


class TestAdminPages:
    def test_list_and_change_pages_render(self, world: World, ops: Client) -> None:
        add_routing_rule(world.deployment, name="r", method_pattern="*", assign_to_email="a@example.com", actor="t")
        created = world.create()
        world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "approved"}, format="json"
        )
        objects = [
            world.deployment,
            world.deployment.organization,
            RoutingRule.objects.first(),
            HITLRequest.objects.first(),
            ApiKey.objects.first(),
            AuditEvent.objects.first(),
        ]
        for obj in objects:
            meta = obj._meta
            assert ops.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")).status_code == 200
            assert (
                ops.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])).status_code == 200
            )
        assert ops.get(reverse("admin:hitl_inboundemail_changelist")).status_code == 200
        assert InboundEmail.objects.count() == 0

    def test_new_api_keys_are_shown_once_and_stored_hashed(self, world: World, ops: Client) -> None:
        response = ops.post(
            reverse("admin:accounts_apikey_add"),
            {"deployment": world.deployment.pk, "name": "from-admin", "access": "full"},
            follow=True,
        )
        shown = [str(m) for m in response.context["messages"]]
        secret = next(m for m in shown if "hitl_" in m).split(": ")[1].split(" ")[0]
        key = ApiKey.objects.get(name="from-admin")
        assert secret.startswith(f"hitl_{key.prefix}_") and secret not in key.key_hash
        client = world.client_for("anonymous")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert client.get("/api/v1/requests/").status_code == 200
