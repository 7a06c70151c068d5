"""The Telegram channel (issue 5) against a fake Bot API on 127.0.0.1: the message with buttons and the
magic link, button presses through the webhook (only from the configured chat), encrypted tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from hitl.channels import telegram
from hitl.lib import crypto
from hitl.models import HITLRequest, Resolution, TelegramMessage
from hitl.services import add_routing_rule
from tests.support.base import World
from tests.support.telegram_fake import FakeTelegram, running

pytestmark = pytest.mark.django_db

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
RULE_TOKEN = "987654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CHAT = "-1001234567890"
OTHER_CHAT = "-1009999999999"


@pytest.fixture
def bot(settings: Any) -> Iterator[FakeTelegram]:
    settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
    with running(FakeTelegram()) as fake:
        settings.HITL_TELEGRAM_API_BASE = fake.url
        yield fake


@pytest.fixture
def configured(world: World, bot: FakeTelegram) -> World:
    world.deployment.telegram_chat_id = CHAT
    world.deployment.telegram_bot_token = crypto.encrypt(TOKEN)
    world.deployment.save()
    return world


def press(
    deployment_id: int,
    data: str,
    *,
    chat: str = CHAT,
    secret: str | None = None,
    user: str = "alice",
    user_id: int = 42,
) -> Any:
    update = {
        "update_id": 1,
        "callback_query": {
            "id": "cb-1",
            "from": {"id": user_id, "is_bot": False, "first_name": "Alice", "username": user},
            "message": {"message_id": 101, "chat": {"id": int(chat), "type": "supergroup"}, "date": 0, "text": "…"},
            "chat_instance": "1",
            "data": data,
        },
    }
    return Client().post(
        f"/telegram/{deployment_id}/webhook/",
        json.dumps(update),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret if secret is not None else telegram.webhook_secret(deployment_id),
    )


def buttons_of(call: Any) -> dict[str, str]:
    rows = call.payload["reply_markup"]["inline_keyboard"]
    return {button["text"]: button["callback_data"] for row in rows for button in row}


class TestNotification:
    def test_it_posts_the_question_buttons_and_magic_link(self, configured: World, bot: FakeTelegram) -> None:
        mail.outbox.clear()
        created = configured.create(
            channel="telegram", message="Publish <this> post?", content="Body & more", assign_to="ann@example.com"
        )
        [sent] = bot.called("sendMessage")
        assert sent.token == TOKEN
        assert sent.payload["chat_id"] == CHAT and sent.payload["parse_mode"] == "HTML"
        assert "<b>Publish &lt;this&gt; post?</b>" in sent.payload["text"]
        assert "<pre>Body &amp; more</pre>" in sent.payload["text"]
        assert f'href="https://hitl.example.test/r/{created["id"]}/' in sent.payload["text"]
        assert set(buttons_of(sent)) == {"Approved", "Rejected"}
        assert all(len(data.encode()) <= 64 for data in buttons_of(sent).values())
        assert mail.outbox == []  # channel=telegram: no email
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notified_at is not None and request.notification_error == ""
        event = AuditEvent.objects.get(event_type="notification.sent", source="telegram")
        assert event.data["to"] == f"telegram:{CHAT}"
        assert TelegramMessage.objects.get().message_id == 101

    def test_approval_mode_and_rules_with_their_own_bot_and_chat(self, configured: World, bot: FakeTelegram) -> None:
        rule = add_routing_rule(
            configured.deployment,
            actor="t",
            name="Payments",
            method_pattern="approve_*",
            assign_to_email="cfo@example.com",
            telegram_chat_id=OTHER_CHAT,
        )
        rule.telegram_bot_token = crypto.encrypt(RULE_TOKEN)
        rule.save()
        configured.create(channel="telegram", mode="approval", emit_options=None, method_name="approve_payment")
        [sent] = bot.called("sendMessage")
        assert (sent.token, sent.payload["chat_id"]) == (RULE_TOKEN, OTHER_CHAT)
        assert set(buttons_of(sent)) == {"✅ Approve", "❌ Reject"}

    def test_a_failing_bot_api_is_recorded_without_the_token(self, configured: World, bot: FakeTelegram) -> None:
        bot.fail = (401, "Unauthorized")
        created = configured.create(channel="telegram")
        request = HITLRequest.objects.get(pk=created["id"])
        assert "HTTP 401: Unauthorized" in request.notification_error
        events = AuditEvent.objects.filter(event_type="notification.failed")
        assert events.count() == request.notification_failures == 1  # the first try; retries wait their backoff
        assert all(TOKEN not in json.dumps(event.data) for event in events)
        assert TOKEN.split(":")[1] not in request.notification_error

    def test_email_requests_send_nothing(self, world: World, bot: FakeTelegram) -> None:
        world.deployment.telegram_chat_id = CHAT
        world.deployment.telegram_bot_token = crypto.encrypt(TOKEN)
        world.deployment.save()
        world.create(channel="email")
        assert bot.calls == []


class TestUnavailableTelegram:
    def test_it_is_refused_at_create_with_a_stable_code(self, world: World, bot: FakeTelegram) -> None:
        response = world.client_for("key").post(
            "/api/v1/requests/", {"message": "Publish?", "channel": "telegram"}, format="json"
        )
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "channel_unavailable" and "Telegram is not configured" in body["errors"]["channel"][0]
        assert not HITLRequest.objects.exists() and bot.calls == []

    def test_a_rule_with_its_own_bot_and_chat_makes_it_available(self, world: World, bot: FakeTelegram) -> None:
        rule = add_routing_rule(
            world.deployment,
            actor="t",
            name="Payments",
            method_pattern="approve_*",
            assign_to_email="cfo@example.com",
            telegram_chat_id=OTHER_CHAT,
        )
        rule.telegram_bot_token = crypto.encrypt(RULE_TOKEN)
        rule.save()
        world.create(channel="telegram", method_name="approve_payment")
        assert [c.payload["chat_id"] for c in bot.called("sendMessage")] == [OTHER_CHAT]
        refused = world.client_for("key").post(
            "/api/v1/requests/", {"message": "x", "channel": "telegram", "method_name": "other"}, format="json"
        )
        assert refused.json()["code"] == "channel_unavailable"

    def test_settings_removed_later_are_a_failure_the_api_and_admin_show(
        self, configured: World, bot: FakeTelegram
    ) -> None:
        created = configured.create(channel="telegram")
        configured.deployment.telegram_bot_token = ""
        configured.deployment.save()
        reassigned = configured.client_for("key").post(
            f"/api/v1/requests/{created['id']}/reassign/", {"email": "bob@example.com"}, format="json"
        )
        assert reassigned.status_code == 200, reassigned.content
        shown = configured.client_for("key").get(f"/api/v1/requests/{created['id']}/").json()
        assert "Telegram is not configured" in shown["notification_error"]
        assert AuditEvent.objects.filter(
            event_type="notification.failed", source="telegram", target_id=created["id"]
        ).exists()
        admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
        client = Client()
        client.force_login(admin)
        page = client.get(reverse("admin:hitl_hitlrequest_change", args=[created["id"]])).content.decode()
        assert "Telegram is not configured" in page

    def test_a_failed_edit_after_the_answer_is_recorded(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(channel="telegram")
        bot.fail = (400, "Bad Request: message to edit not found")
        configured.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "approved"}, format="json"
        )
        shown = configured.client_for("key").get(f"/api/v1/requests/{created['id']}/").json()
        assert "editMessageText: HTTP 400: Bad Request: message to edit not found" in shown["notification_error"]
        event = AuditEvent.objects.get(event_type="notification.failed", target_id=created["id"])
        assert event.source == "telegram" and TOKEN not in json.dumps(event.data)


class TestClosedMessage:
    @pytest.mark.parametrize("message", ["Publish?", "Publish this & that? " * 400])
    def test_the_edited_message_says_the_outcome_and_who_answered(
        self, configured: World, bot: FakeTelegram, message: str
    ) -> None:
        created = configured.create(channel="telegram", message=message, content="<b>x</b> " * 400)
        configured.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "rejected", "feedback": "Too long"}, format="json"
        )
        [edit] = bot.called("editMessageText")
        text = edit.payload["text"]
        assert len(text) <= telegram.MAX_TEXT
        assert "Responded: <b>rejected</b>" in text and "via api" in text
        assert text.count("<b>") == text.count("</b>") and text.count("<pre>") == text.count("</pre>")


class TestButtonPresses:
    def test_a_press_from_the_configured_chat_resolves(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(channel="telegram", emit_options=["approved", "rejected", "needs_revision"])
        data = buttons_of(bot.called("sendMessage")[0])["Needs revision"]
        response = press(configured.deployment.pk, data)
        assert response.status_code == 200
        assert response.json() == {
            "method": "answerCallbackQuery",
            "callback_query_id": "cb-1",
            "text": "Recorded: Needs revision. Thank you!",
        }
        resolution = Resolution.objects.get(request_id=created["id"])
        assert (resolution.source, resolution.responder, resolution.outcome) == (
            "telegram",
            "telegram:@alice",
            "needs_revision",
        )
        assert resolution.result["source"] == "telegram"
        # The buttons come off the message, which now says how it ended.
        [edit] = bot.called("editMessageText")
        assert (edit.payload["chat_id"], edit.payload["message_id"]) == (CHAT, 101)
        assert "reply_markup" not in edit.payload and "needs_revision" in edit.payload["text"]

    def test_a_press_from_another_chat_is_refused(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(channel="telegram")
        data = buttons_of(bot.called("sendMessage")[0])["Approved"]
        response = press(configured.deployment.pk, data, chat=OTHER_CHAT)
        assert response.status_code == 200
        assert response.json()["text"] == "Answers to this request are not accepted from this chat."
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        refused = AuditEvent.objects.get(event_type="response.refused")
        assert refused.data == {"reason": "wrong_chat", "chat_id": OTHER_CHAT}

    def test_the_webhook_needs_the_secret_token(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(channel="telegram")
        data = buttons_of(bot.called("sendMessage")[0])["Approved"]
        assert press(configured.deployment.pk, data, secret="wrong").status_code == 403
        assert press(configured.deployment.pk, data, secret="").status_code == 403
        # Another deployment's secret does not open this one.
        assert (
            press(configured.deployment.pk, data, secret=telegram.webhook_secret(configured.other.pk)).status_code
            == 403
        )
        assert press(999999, data).status_code == 404
        assert HITLRequest.objects.get(pk=created["id"]).is_pending

    def test_forged_or_foreign_buttons_change_nothing(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(channel="telegram")
        data = buttons_of(bot.called("sendMessage")[0])["Approved"]
        prefix, rid, index, mac = data.split(":")
        forged = f"{prefix}:{rid}:1:{mac}"  # "Rejected" with Approved's MAC
        assert press(configured.deployment.pk, forged).json()["text"] == "This button is not valid any more."
        # The right button, sent to another deployment's webhook.
        configured.other.telegram_chat_id = CHAT
        configured.other.save()
        assert press(configured.other.pk, data).json()["text"] == "This button is not valid any more."
        assert HITLRequest.objects.get(pk=created["id"]).is_pending

    def test_a_second_press_is_told_who_answered(self, configured: World, bot: FakeTelegram) -> None:
        configured.create(channel="telegram")
        data = buttons_of(bot.called("sendMessage")[0])
        press(configured.deployment.pk, data["Approved"])
        late = press(configured.deployment.pk, data["Rejected"], user="bob")
        assert "already answered by telegram:@alice via telegram" in late.json()["text"]
        assert Resolution.objects.get().outcome == "approved"

    def test_single_choices_get_buttons_too(self, configured: World, bot: FakeTelegram) -> None:
        created = configured.create(
            channel="telegram",
            mode="choices",
            emit_options=None,
            options=[{"n": "Plan A"}, {"n": "Plan B"}],
            label_path="n",
        )
        data = buttons_of(bot.called("sendMessage")[0])
        press(configured.deployment.pk, data["Plan B"])
        choice = Resolution.objects.get(request_id=created["id"]).result["choice"]
        assert (choice["id"], choice["label"]) == ("option_2", "Plan B")

    def test_updates_that_are_not_presses_are_acknowledged(self, configured: World) -> None:
        response = Client().post(
            f"/telegram/{configured.deployment.pk}/webhook/",
            json.dumps({"update_id": 2, "message": {"text": "hello"}}),
            content_type="application/json",
            HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=telegram.webhook_secret(configured.deployment.pk),
        )
        assert response.status_code == 200 and response.json() == {}


class TestTelegramAdmin:
    @pytest.fixture
    def ops(self, world: World) -> Client:
        client = Client()
        client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
        return client

    def test_the_token_is_write_only_and_encrypted_at_rest(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        data = {
            "organization": world.deployment.organization_id,
            "name": world.deployment.name,
            "creator": world.deployment.creator_id,
            "link_ttl_seconds": 604800,
            "escalation_emails": "[]",
            "auto_response_emit_options": "[]",
            "telegram_chat_id": CHAT,
            "telegram_bot_token_input": TOKEN,
            "routing_rules-TOTAL_FORMS": 0,
            "routing_rules-INITIAL_FORMS": 0,
            "telegram_identities-TOTAL_FORMS": 0,
            "telegram_identities-INITIAL_FORMS": 0,
        }
        assert ops.post(url, data).status_code == 302
        world.deployment.refresh_from_db()
        assert world.deployment.telegram_bot_token != TOKEN and TOKEN not in world.deployment.telegram_bot_token
        assert crypto.decrypt(world.deployment.telegram_bot_token) == TOKEN
        page = ops.get(url).content.decode()
        assert TOKEN not in page and "a bot token is set" in page
        changed = AuditEvent.objects.filter(event_type="config.changed").last()
        assert "telegram_bot_token_input" in changed.data["fields"] and TOKEN not in json.dumps(changed.data)
        # Saving again without a token keeps it; a malformed one is refused.
        ops.post(url, {**data, "telegram_bot_token_input": ""})
        world.deployment.refresh_from_db()
        assert crypto.decrypt(world.deployment.telegram_bot_token) == TOKEN
        bad = ops.post(url, {**data, "telegram_bot_token_input": "nope", "telegram_chat_id": "chat!"})
        assert "does not look like a bot token" in bad.content.decode() and "numeric chat id" in bad.content.decode()

    def test_registering_the_webhook(self, configured: World, bot: FakeTelegram, ops: Client) -> None:
        response = ops.post(
            reverse("admin:accounts_deployment_changelist"),
            {"action": "register_telegram_webhook", "_selected_action": [configured.deployment.pk]},
            follow=True,
        )
        [call] = bot.called("setWebhook")
        assert call.payload == {
            "url": f"https://hitl.example.test/telegram/{configured.deployment.pk}/webhook/",
            "secret_token": telegram.webhook_secret(configured.deployment.pk),
            "allowed_updates": ["callback_query"],
        }
        assert "Telegram now sends button presses" in response.content.decode()

    def test_bot_tokens_are_rotated_with_the_other_secrets(self) -> None:
        from accounts.models import Deployment
        from hitl.models import RoutingRule
        from hitl.services.keys import encrypted_columns

        columns = encrypted_columns()
        assert (Deployment, "telegram_bot_token") in columns and (RoutingRule, "telegram_bot_token") in columns


class TestChannelConfiguredByUsername:
    """A chat configured as `@channelname` (issue 14): presses carry the numeric id Telegram resolved."""

    @pytest.fixture
    def by_name(self, configured: World, bot: FakeTelegram) -> World:
        bot.usernames["reviewchannel"] = int(CHAT)
        configured.deployment.telegram_chat_id = "@ReviewChannel"
        configured.deployment.save()
        return configured

    def test_it_accepts_a_press_from_that_channel(self, by_name: World, bot: FakeTelegram) -> None:
        created = by_name.create(channel="telegram")
        assert bot.called("sendMessage")[0].payload["chat_id"] == "@ReviewChannel"
        assert TelegramMessage.objects.get(request_id=created["id"]).chat_id == CHAT
        data = buttons_of(bot.called("sendMessage")[0])["Approved"]
        assert press(by_name.deployment.pk, data).status_code == 200
        assert Resolution.objects.get(request_id=created["id"]).outcome == "approved"

    def test_it_still_refuses_a_press_from_another_chat(self, by_name: World, bot: FakeTelegram) -> None:
        created = by_name.create(channel="telegram")
        data = buttons_of(bot.called("sendMessage")[0])["Approved"]
        response = press(by_name.deployment.pk, data, chat=OTHER_CHAT)
        assert response.json()["text"] == "Answers to this request are not accepted from this chat."
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
