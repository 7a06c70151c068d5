"""The management commands ops staff script (SPEC §11): the created thing alone on the last line."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import ApiKey, Deployment
from hitl.models import RoutingRule

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


class TestCommands:
    def test_the_done_when_path_of_the_foundation(self) -> None:
        deployment_id = run(
            "create_deployment", "--name", "Payments", "--creator-email", "Owner@Example.com", "--organization", "Acme"
        )
        deployment = Deployment.objects.get(pk=int(deployment_id))
        assert deployment.creator_email == "owner@example.com" and deployment.organization.name == "Acme"
        rule_id = run(
            "add_routing_rule",
            "--deployment",
            deployment_id,
            "--name",
            "Finance",
            "--method-pattern",
            "approve_*",
            "--assign-to-email",
            "finance@example.com",
            "--condition",
            "amount >= 10000",
            "--priority",
            "5",
        )
        rule = RoutingRule.objects.get(pk=int(rule_id))
        assert (rule.priority, rule.conditions) == (5, "amount >= 10000")
        key = run("create_api_key", "--deployment", deployment_id, "--name", "ci")
        assert key.startswith("hitl_")
        stored = ApiKey.objects.get(deployment=deployment)
        assert key not in (stored.key_hash, stored.prefix)

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        body = {
            "method_name": "approve_payment",
            "message": "Pay?",
            "emit_options": ["approved", "rejected"],
            "state": {"amount": 20000},
        }
        created = client.post("/api/v1/requests/", body, format="json")
        assert created.status_code == 201
        assert created.json()["assigned_to_email"] == "finance@example.com"
        answer = client.post(
            f"/api/v1/requests/{created.json()['id']}/respond/", {"outcome": "approved"}, format="json"
        )
        assert answer.json()["outcome"] == "approved"
        assert (
            client.post(
                f"/api/v1/requests/{created.json()['id']}/respond/", {"outcome": "approved"}, format="json"
            ).status_code
            == 409
        )
        assert "intact" in run("audit_verify")

    def test_it_explains_bad_input(self) -> None:
        with pytest.raises(CommandError, match="No deployment"):
            run("create_api_key", "--deployment", "999")
        deployment_id = run("create_deployment", "--name", "P", "--creator-email", "o@example.com")
        with pytest.raises(CommandError, match="conditions"):
            run(
                "add_routing_rule",
                "--deployment",
                deployment_id,
                "--name",
                "x",
                "--method-pattern",
                "*",
                "--assign-to-email",
                "a@example.com",
                "--condition",
                "amount >>= 3",
            )

    def test_load_demo_is_idempotent(self) -> None:
        first = StringIO()
        call_command("load_demo", stdout=first)
        assert "API key:" in first.getvalue()
        again = StringIO()
        call_command("load_demo", stdout=again)
        assert "already loaded" in again.getvalue()
        assert Deployment.objects.count() == 1
