"""Several approvers on Slack (SPEC §13): a press counts only when the presser's verified email holds a
seat; each approver decides once; the requester's press is refused."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from hitl.models import Decision, HITLRequest
from tests.support.base import World
from tests.support.slack_fake import FakeSlack, block_actions, buttons_of, post_interaction
from tests.support.slack_world import ANN, BOB, CHANNEL, SECRET

pytestmark = pytest.mark.django_db


def press(world: World, button: dict[str, Any], user: str) -> Any:
    return post_interaction(
        world.deployment.pk, block_actions(user, CHANNEL, button["action_id"], button["value"]), SECRET
    )


def ephemerals(slack_api: FakeSlack) -> list[str]:
    return [c.payload["text"] for c in slack_api.called("chat.postEphemeral")]


class TestSlackPool:
    def test_only_approvers_presses_count_and_each_once(self, slack_world: World, slack_api: FakeSlack) -> None:
        created = slack_world.create(
            channel="slack",
            approvers=["ann@example.com", "cid@example.com"],
            policy="all",
            requested_by="bob@example.com",
        )
        buttons = buttons_of(slack_api.called("chat.postMessage")[-1])
        press(slack_world, buttons["Approved"], BOB)  # the requester, and not in the pool
        press(slack_world, buttons["Approved"], ANN)
        press(slack_world, buttons["Rejected"], ANN)
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert list(Decision.objects.values_list("approver", "outcome", "source")) == [
            ("ann@example.com", "approved", "slack")
        ]
        said = ephemerals(slack_api)
        assert said[0] == "Not recorded: bob@example.com is not one of this request's approvers."
        assert said[1].startswith("Recorded: Approved")
        assert "already decided" in said[2]
        reasons = [e.data["reason"] for e in AuditEvent.objects.filter(event_type="response.refused")]
        assert reasons == ["not_an_approver", "already_decided"]


class TestTelegramPool:
    def test_a_press_that_maps_to_no_approver_is_refused_and_audited(self, world: World, settings: Any) -> None:
        from hitl.lib import crypto
        from tests.hitl.channels.test_telegram import CHAT, TOKEN, buttons_of, press
        from tests.support.telegram_fake import FakeTelegram, running

        settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
        with running(FakeTelegram()) as bot:
            settings.HITL_TELEGRAM_API_BASE = bot.url
            world.deployment.telegram_chat_id = CHAT
            world.deployment.telegram_bot_token = crypto.encrypt(TOKEN)
            world.deployment.save()
            created = world.create(channel="telegram", approvers=["ann@example.com", "bob@example.com"])
            data = buttons_of(bot.called("sendMessage")[0])["Approved"]
            response = press(world.deployment.pk, data, user="alice")
        assert response.json()["text"].startswith("Not recorded: telegram:@alice is not one of")
        assert HITLRequest.objects.get(pk=created["id"]).is_pending and not Decision.objects.exists()
        refused = AuditEvent.objects.get(event_type="response.refused", target_id=created["id"])
        assert refused.data["reason"] == "not_an_approver"
