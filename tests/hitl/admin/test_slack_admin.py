"""Slack settings in the admin (issue 20): write-only encrypted secrets, both or neither, the channel id,
a rule's own app, and the "Test Slack" action against the fake Slack Web API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from hitl.lib import crypto
from hitl.models import RoutingRule
from tests.support.base import World
from tests.support.slack_fake import FakeSlack
from tests.support.slack_world import CHANNEL, SECRET, TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(world: World) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def deployment_form(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "organization": world.deployment.organization_id,
        "name": world.deployment.name,
        "creator": world.deployment.creator_id,
        "link_ttl_seconds": 604800,
        "escalation_emails": "[]",
        "auto_response_emit_options": "[]",
        "routing_rules-TOTAL_FORMS": 0,
        "routing_rules-INITIAL_FORMS": 0,
        "telegram_identities-TOTAL_FORMS": 0,
        "telegram_identities-INITIAL_FORMS": 0,
        **extra,
    }


class TestSlackSettings:
    def test_the_secrets_are_write_only_and_encrypted_at_rest(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        data = deployment_form(
            world, slack_channel_id=CHANNEL, slack_bot_token_input=TOKEN, slack_signing_secret_input=SECRET
        )
        assert ops.post(url, data).status_code == 302
        world.deployment.refresh_from_db()
        assert (
            crypto.decrypt(world.deployment.slack_bot_token) == TOKEN and TOKEN not in world.deployment.slack_bot_token
        )
        assert crypto.decrypt(world.deployment.slack_signing_secret) == SECRET
        assert world.deployment.slack_channel_id == CHANNEL
        page = ops.get(url).content.decode()
        assert TOKEN not in page and SECRET not in page and "a Slack app is set, channel C0REVIEWS01." in page
        changed = AuditEvent.objects.filter(event_type="config.changed").last()
        assert "slack_bot_token_input" in changed.data["fields"] and SECRET not in json.dumps(changed.data)
        # Saving without them keeps them; clearing removes both.
        ops.post(url, {**data, "slack_bot_token_input": "", "slack_signing_secret_input": ""})
        world.deployment.refresh_from_db()
        assert crypto.decrypt(world.deployment.slack_signing_secret) == SECRET
        ops.post(url, {**data, "slack_bot_token_input": "", "slack_signing_secret_input": "", "clear_slack_app": "on"})
        world.deployment.refresh_from_db()
        assert (world.deployment.slack_bot_token, world.deployment.slack_signing_secret) == ("", "")

    def test_bad_values_and_half_an_app_are_refused(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        bad = ops.post(
            url,
            deployment_form(
                world, slack_channel_id="#reviews", slack_bot_token_input="xoxp-nope", slack_signing_secret_input="!"
            ),
        ).content.decode()
        assert "does not look like a bot token" in bad and "does not look like a signing secret" in bad
        assert "A channel id such as C0123456789" in bad
        half = ops.post(url, deployment_form(world, slack_bot_token_input=TOKEN)).content.decode()
        assert "A Slack app needs both its bot token and its signing secret." in half
        world.deployment.refresh_from_db()
        assert world.deployment.slack_bot_token == ""

    def test_a_rule_gets_its_own_app(self, world: World, ops: Client) -> None:
        rule = RoutingRule.objects.create(
            deployment=world.deployment, name="Ops", method_pattern="ops_*", assign_to_email="ops@example.com"
        )
        url = reverse("admin:hitl_routingrule_change", args=[rule.pk])
        data = {
            "deployment": world.deployment.pk,
            "name": "Ops",
            "enabled": "on",
            "priority": 100,
            "method_pattern": "ops_*",
            "assign_to_email": "ops@example.com",
            "escalation_emails": "[]",
            "slack_channel_id": CHANNEL,
            "slack_bot_token_input": TOKEN,
            "slack_signing_secret_input": SECRET,
        }
        response = ops.post(url, data)
        assert response.status_code == 302, response.content.decode()[:3000]
        rule.refresh_from_db()
        assert crypto.decrypt(rule.slack_bot_token) == TOKEN and rule.slack_channel_id == CHANNEL
        assert TOKEN not in ops.get(url).content.decode()


class TestTestSlackAction:
    def run(self, client: Client, world: World) -> str:
        response = client.post(
            reverse("admin:accounts_deployment_changelist"),
            {"action": "test_slack", "_selected_action": [world.deployment.pk]},
            follow=True,
        )
        return response.content.decode()

    def test_it_posts_a_test_message(self, slack_world: World, slack_api: FakeSlack, ops: Client) -> None:
        page = self.run(ops, slack_world)
        [auth] = slack_api.called("auth.test")
        [posted] = slack_api.called("chat.postMessage")
        assert auth.token == TOKEN and posted.payload["channel"] == CHANNEL
        assert "Content Review" in posted.payload["text"]
        assert f"posted a test message to {CHANNEL} as hitl-bot in Acme" in page
        assert f"https://hitl.example.test/slack/{slack_world.deployment.pk}/interactions/" in page

    def test_it_says_what_is_wrong(self, world: World, slack_api: FakeSlack, ops: Client) -> None:
        assert "Slack is not configured" in self.run(ops, world)
        world.deployment.slack_channel_id = CHANNEL
        world.deployment.slack_bot_token = crypto.encrypt(TOKEN)
        world.deployment.slack_signing_secret = crypto.encrypt(SECRET)
        world.deployment.save()
        slack_api.fail = (200, "invalid_auth")
        page = self.run(ops, world)
        assert "Slack auth.test: HTTP 200: invalid_auth" in page and TOKEN not in page

    def test_it_needs_the_change_permission(self, slack_world: World, slack_api: FakeSlack) -> None:
        viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_deployment"))
        client = Client()
        client.force_login(viewer)
        self.run(client, slack_world)
        assert slack_api.calls == []
