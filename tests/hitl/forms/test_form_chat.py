"""Telegram and Slack show a form request with a link to its form, never an in-chat form, and a
button press on a form request does not resolve it (SPEC §14)."""

from __future__ import annotations

import json
import uuid

import pytest

from hitl.channels import telegram
from hitl.channels.slack import ACTION_OPTION, ACTION_TEXT
from hitl.models import HITLRequest
from tests.hitl.channels.test_telegram import press
from tests.hitl.forms.support import form_payload, nothing_recorded
from tests.support.base import World
from tests.support.slack_fake import FakeSlack, block_actions, buttons_of, post_interaction
from tests.support.slack_world import ANN, CHANNEL, SECRET
from tests.support.telegram_fake import FakeTelegram

pytestmark = pytest.mark.django_db


class TestTelegram:
    def test_it_links_to_the_form_and_a_press_resolves_nothing(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(**{**form_payload(channel="telegram"), "emit_options": None})
        [sent] = bot.called("sendMessage")
        assert "reply_markup" not in sent.payload
        assert "Open the form</a>" in sent.payload["text"] and "/r/" in sent.payload["text"]
        # A signed press for a button it never had (index 0) is not an answer.
        response = press(configured.deployment.pk, telegram.button_data(uuid.UUID(created["id"]), 0))
        assert response.status_code == 200
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert nothing_recorded(created["id"])


class TestSlack:
    def test_it_links_to_the_form_and_presses_resolve_nothing(self, slack_world: World, slack_api: FakeSlack) -> None:
        created = slack_world.create(
            **{**form_payload(channel="slack", assign_to="ann@example.com"), "emit_options": None}
        )
        [posted] = slack_api.called("chat.postMessage")
        assert list(buttons_of(posted)) == ["My review link"]
        assert "Open the form" in json.dumps(posted.payload["blocks"])
        rid = uuid.UUID(created["id"]).hex
        for action_id, value in ((f"{ACTION_OPTION}_0", f"{rid}:0"), (ACTION_TEXT, rid)):
            response = post_interaction(
                slack_world.deployment.pk, block_actions(ANN, CHANNEL, action_id, value), SECRET
            )
            assert response.status_code == 200
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert nothing_recorded(created["id"])
