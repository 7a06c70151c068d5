"""The Slack channel (issue 20, SPEC §16) against a fake Slack Web API on 127.0.0.1: the Block Kit message,
the message updated when the request resolves from any channel, per-rule apps and channels, refusing
channel=slack where nothing would post it, and every call going through the egress seam."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEvent
from hitl.lib import crypto
from hitl.models import HITLRequest, SlackMessage
from hitl.services import add_routing_rule
from tests.support.base import World
from tests.support.slack_fake import FakeSlack, buttons_of
from tests.support.slack_world import (
    CHANNEL,
    OTHER_CHANNEL,
    RULE_SECRET,
    RULE_TOKEN,
    SECRET,
    TOKEN,
)

pytestmark = pytest.mark.django_db


def texts(call_payload: dict) -> str:
    return json.dumps(call_payload["blocks"])


class TestSlackMessage:
    def test_it_posts_the_question_content_assignee_link_and_buttons(
        self, slack_world: World, slack_api: FakeSlack
    ) -> None:
        mail.outbox.clear()
        created = slack_world.create(
            channel="slack",
            message="Publish <!channel> post?",
            content="Body & <b>more</b>",
            assign_to="ann@example.com",
            emit_options=["approved", "rejected", "needs_revision"],
        )
        [sent] = slack_api.called("chat.postMessage")
        assert sent.token == TOKEN and sent.payload["channel"] == CHANNEL
        assert sent.payload["text"] == "Publish &lt;!channel&gt; post?"  # the notification's text, escaped too
        assert mail.outbox == []  # channel=slack: no email
        blocks = texts(sent.payload)
        # Escaped: no @channel ping, no markup from the request's text.
        assert "*Publish &lt;!channel&gt; post?*" in blocks
        assert "```Body &amp; &lt;b&gt;more&lt;/b&gt;```" in blocks
        assert "For ann@example.com" in blocks and "Content Review" in blocks
        assert f"https://hitl.example.test/requests/{created['id']}/|Review page" in blocks
        # The magic link acts as the assignee: it is never posted to a shared channel.
        assert "/r/" not in blocks
        buttons = buttons_of(sent)
        assert list(buttons) == ["Approved", "Rejected", "Needs revision", "With a comment…", "My review link"]
        rid = created["id"].replace("-", "")
        assert buttons["Needs revision"]["value"] == f"{rid}:2"
        message = SlackMessage.objects.get()
        assert (message.channel_id, message.ts, message.event) == (
            CHANNEL,
            f"{slack_api.next_ts}.000100",
            "new_request",
        )
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notified_at is not None and request.notification_error == ""
        event = AuditEvent.objects.get(event_type="notification.sent", source="slack")
        assert event.data["to"] == f"slack:{CHANNEL}"

    def test_it_offers_buttons_per_mode(self, slack_world: World, slack_api: FakeSlack) -> None:
        slack_world.create(channel="slack", mode="approval", emit_options=None)
        slack_world.create(
            channel="slack",
            mode="choices",
            emit_options=None,
            options=[{"n": f"Plan {i}"} for i in "ABC"],
            label_path="n",
        )
        slack_world.create(
            channel="slack",
            mode="choices",
            emit_options=None,
            options=[{"n": f"P{i}"} for i in range(6)],
            label_path="n",
        )
        slack_world.create(channel="slack", mode="text", emit_options=None)
        approval, few, many, text = (buttons_of(c) for c in slack_api.called("chat.postMessage"))
        assert (approval["Approve"]["style"], approval["Reject"]["style"]) == ("primary", "danger")
        assert list(few) == ["Plan A", "Plan B", "Plan C", "With a comment…", "My review link"]
        assert list(many) == ["My review link"]  # more than 5 choices: answered on the review page
        assert list(text) == ["Answer…", "My review link"]

    def test_a_rule_brings_its_own_app_and_channel(self, slack_world: World, slack_api: FakeSlack) -> None:
        rule = add_routing_rule(
            slack_world.deployment,
            actor="t",
            name="Payments",
            method_pattern="approve_*",
            assign_to_email="cfo@example.com",
            slack_channel_id=OTHER_CHANNEL,
        )
        slack_world.create(channel="slack", method_name="approve_payment")
        rule.slack_bot_token = crypto.encrypt(RULE_TOKEN)
        rule.slack_signing_secret = crypto.encrypt(RULE_SECRET)
        rule.save()
        slack_world.create(channel="slack", method_name="approve_payment")
        first, second = slack_api.called("chat.postMessage")
        assert (first.token, first.payload["channel"]) == (TOKEN, OTHER_CHANNEL)  # the rule's channel only
        assert (second.token, second.payload["channel"]) == (RULE_TOKEN, OTHER_CHANNEL)

    def test_it_updates_the_message_when_answered_elsewhere(self, slack_world: World, slack_api: FakeSlack) -> None:
        created = slack_world.create(channel="slack", assign_to="ann@example.com")
        response = slack_world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "rejected"}, format="json"
        )
        assert response.status_code == 200, response.content
        [update] = slack_api.called("chat.update")
        assert update.payload["channel"] == CHANNEL and update.payload["ts"] == f"{slack_api.next_ts}.000100"
        blocks = texts(update.payload)
        assert '"actions"' not in blocks  # the buttons are gone
        assert "*Responded*: *rejected*" in blocks and "via api" in blocks
        assert SlackMessage.objects.get().closed_at is not None

    def test_a_reassignment_retires_the_old_message_and_posts_a_new_one(
        self, slack_world: World, slack_api: FakeSlack
    ) -> None:
        from hitl.services import reassign_request

        created = slack_world.create(channel="slack", assign_to="ann@example.com")
        reassign_request(created["id"], email="bob@example.com", actor="manager@example.com")
        first, second = slack_api.called("chat.postMessage")
        [retired] = slack_api.called("chat.update")
        assert retired.payload["ts"] == f"{slack_api.next_ts - 1}.000100"
        assert '"actions"' not in texts(retired.payload) and "Reassigned to bob@example.com" in texts(retired.payload)
        assert "For bob@example.com" in texts(second.payload) and buttons_of(second)
        # Resolving updates only the message still open.
        slack_world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "approved"}, format="json"
        )
        assert [c.payload["ts"] for c in slack_api.called("chat.update")][1:] == [f"{slack_api.next_ts}.000100"]

    def test_a_failing_slack_is_recorded_without_the_token(self, slack_world: World, slack_api: FakeSlack) -> None:
        slack_api.fail = (200, "invalid_auth")
        created = slack_world.create(channel="slack")
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notification_error == "Slack chat.postMessage: HTTP 200: invalid_auth"
        event = AuditEvent.objects.filter(event_type="notification.failed").order_by("pk").first()
        # Sync mode runs every retry at once (hitl.tasks.NOTIFY_FAILURE_BACKOFF): one event per try.
        assert event is not None and request.notification_failures == 1  # the first try; retries wait (outbox)
        assert not any(TOKEN in json.dumps(e.data) for e in AuditEvent.objects.filter(event_type="notification.failed"))

    def test_every_call_goes_through_the_egress_seam(self, slack_world: World, slack_api: FakeSlack, settings) -> None:
        settings.HITL_EGRESS_ALLOWED_HOSTS = []  # 127.0.0.1 is private: our seam refuses it, urllib would not
        created = slack_world.create(channel="slack")
        assert slack_api.calls == []
        error = HITLRequest.objects.get(pk=created["id"]).notification_error
        assert error == "Slack chat.postMessage: HTTPS is required (plain HTTP only with DEBUG or an allow-listed host)"


class TestChannelAvailable:
    def test_channel_slack_is_refused_where_slack_is_not_configured(self, world: World, slack_api: FakeSlack) -> None:
        response = world.client_for("key").post(
            "/api/v1/requests/", {"message": "Ship?", "channel": "slack", "mode": "approval"}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["code"] == "channel_unavailable"
        assert HITLRequest.objects.count() == 0
        # A token without its signing secret is not a Slack app either.
        world.deployment.slack_channel_id = CHANNEL
        world.deployment.slack_bot_token = crypto.encrypt(TOKEN)
        world.deployment.save()
        response = world.client_for("key").post(
            "/api/v1/requests/", {"message": "Ship?", "channel": "slack", "mode": "approval"}, format="json"
        )
        assert response.json()["code"] == "channel_unavailable"
        world.deployment.slack_signing_secret = crypto.encrypt(SECRET)
        world.deployment.save()
        response = world.client_for("key").post(
            "/api/v1/requests/", {"message": "Ship?", "channel": "slack", "mode": "approval"}, format="json"
        )
        assert response.status_code == 201 and response.json()["channel"] == "slack"

    def test_a_rule_can_supply_what_the_deployment_lacks(self, world: World, slack_api: FakeSlack) -> None:
        rule = add_routing_rule(
            world.deployment, actor="t", name="Ops", method_pattern="ops_*", assign_to_email="ops@example.com"
        )
        rule.slack_channel_id = CHANNEL
        rule.slack_bot_token = crypto.encrypt(RULE_TOKEN)
        rule.slack_signing_secret = crypto.encrypt(RULE_SECRET)
        rule.save()
        client = world.client_for("key")
        ok = client.post(
            "/api/v1/requests/",
            {"message": "?", "mode": "approval", "channel": "slack", "method_name": "ops_x"},
            format="json",
        )
        assert ok.status_code == 201
        refused = client.post(
            "/api/v1/requests/",
            {"message": "?", "mode": "approval", "channel": "slack", "method_name": "y"},
            format="json",
        )
        assert refused.status_code == 400 and refused.json()["code"] == "channel_unavailable"
        assert [c.token for c in slack_api.called("chat.postMessage")] == [RULE_TOKEN]

    def test_secrets_are_rotated_with_the_other_secrets(self) -> None:
        from accounts.models import Deployment
        from hitl.models import RoutingRule
        from hitl.services.keys import encrypted_columns

        columns = encrypted_columns()
        for model in (Deployment, RoutingRule):
            assert (model, "slack_bot_token") in columns and (model, "slack_signing_secret") in columns

    def test_the_interactions_url_is_not_a_page(self, slack_world: World) -> None:
        assert Client().get(f"/slack/{slack_world.deployment.pk}/interactions/").status_code == 405
