"""Escalation chains are lists of valid emails, refused otherwise by the admin and the services (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from hitl.models import RoutingRule
from hitl.services import add_routing_rule
from tests.hitl.admin import test_ops_admin
from tests.support.base import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(world: World) -> Client:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client


def rule_data(world: World, **changes: Any) -> dict[str, Any]:
    data = {
        "deployment": world.deployment.pk,
        "name": "Finance",
        "enabled": "on",
        "priority": 10,
        "method_pattern": "approve_*",
        "assign_to_email": "finance@example.com",
        "escalation_after_minutes": 30,
        "escalation_emails": '["lead@example.com"]',
    }
    data.update(changes)
    return data


class TestEscalationChainValidation:
    def test_the_deployment_form_refuses_an_invalid_email(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        data = test_ops_admin.TestDeploymentSettings().form_data(
            world, escalation_emails='["lead@example.com", "not-an-email"]'
        )
        response = ops.post(url, data)
        assert response.status_code == 200
        assert "Not valid email addresses: &#x27;not-an-email&#x27;" in response.content.decode()
        world.deployment.refresh_from_db()
        assert world.deployment.escalation_emails == []

    def test_the_deployment_form_refuses_a_chain_that_is_not_a_list(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        response = ops.post(
            url, test_ops_admin.TestDeploymentSettings().form_data(world, escalation_emails='"lead@example.com"')
        )
        assert response.status_code == 200 and "A JSON list of email addresses" in response.content.decode()

    def test_the_rule_form_refuses_an_invalid_email_and_saves_a_valid_chain(self, world: World, ops: Client) -> None:
        add = reverse("admin:hitl_routingrule_add")
        refused = ops.post(add, rule_data(world, escalation_emails='["not-an-email"]'))
        assert refused.status_code == 200
        assert "Not valid email addresses: &#x27;not-an-email&#x27;" in refused.content.decode()
        assert not RoutingRule.objects.exists()
        assert ops.post(add, rule_data(world)).status_code == 302
        assert RoutingRule.objects.get().escalation_emails == ["lead@example.com"]

    def test_the_service_refuses_it_too(self, world: World) -> None:
        with pytest.raises(ValidationError, match="not-an-email"):
            add_routing_rule(
                world.deployment,
                actor="t",
                name="x",
                method_pattern="*",
                assign_to_email="a@example.com",
                escalation_emails=["not-an-email"],
            )
