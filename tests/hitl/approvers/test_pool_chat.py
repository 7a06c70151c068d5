"""Several approvers on Slack and Telegram (SPEC §13): a press counts only when it maps to an approver
(Slack: the presser's verified email; Telegram: a username linked to an approver, pinned to the account
at its first press); each approver decides once; the requester's press is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from audit.models import AuditEvent
from hitl.lib import crypto
from hitl.models import Decision, HITLRequest, TelegramIdentity
from tests.support.base import World
from tests.support.slack_fake import FakeSlack, block_actions, buttons_of, post_interaction
from tests.support.slack_world import ANN, BOB, CHANNEL, SECRET
from tests.support.telegram_fake import FakeTelegram, running

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
        assert said[0] == "Not recorded: The person who asked for this approval cannot approve it (no self-approval)."
        assert said[1].startswith("Recorded: Approved")
        assert "already decided" in said[2]
        reasons = [e.data["reason"] for e in AuditEvent.objects.filter(event_type="response.refused")]
        assert reasons == ["self_approval", "already_decided"]


@pytest.fixture
def bot(world: World, settings: Any) -> Iterator[FakeTelegram]:
    from tests.hitl.channels.test_telegram import CHAT, TOKEN

    settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
    with running(FakeTelegram()) as fake:
        settings.HITL_TELEGRAM_API_BASE = fake.url
        world.deployment.telegram_chat_id = CHAT
        world.deployment.telegram_bot_token = crypto.encrypt(TOKEN)
        world.deployment.save()
        yield fake


def tg_press(world: World, bot: FakeTelegram, label: str, *, user: str, user_id: int, message: int = 0) -> str:
    """Press `label` on the request's `message`-th Telegram notification as @user (account user_id)."""
    from tests.hitl.channels.test_telegram import buttons_of, press

    data = buttons_of(bot.called("sendMessage")[message])[label]
    return str(press(world.deployment.pk, data, user=user, user_id=user_id).json()["text"])


def link(world: World, email: str, username: str) -> TelegramIdentity:
    return TelegramIdentity.objects.create(deployment=world.deployment, email=email, username=username)


class TestTelegramPool:
    def test_a_press_that_maps_to_no_approver_is_refused_and_audited(self, world: World, bot: FakeTelegram) -> None:
        created = world.create(channel="telegram", approvers=["ann@example.com", "bob@example.com"])
        said = tg_press(world, bot, "Approved", user="alice", user_id=42)
        assert said.startswith("Not recorded: telegram:@alice is not linked to an approver of this request")
        assert HITLRequest.objects.get(pk=created["id"]).is_pending and not Decision.objects.exists()
        refused = AuditEvent.objects.get(event_type="response.refused", target_id=created["id"])
        assert refused.data["reason"] == "not_an_approver"

    def test_linked_usernames_decide_as_their_approver_once_each(self, world: World, bot: FakeTelegram) -> None:
        link(world, "Ann@Example.com", "@Annie_T")
        link(world, "bob@example.com", "bobby_t")
        created = world.create(channel="telegram", approvers=["ann@example.com", "bob@example.com"], policy="all")
        assert tg_press(world, bot, "Approved", user="annie_t", user_id=1001).startswith("Recorded")
        assert "already decided" in tg_press(world, bot, "Rejected", user="ANNIE_T", user_id=1001)
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert tg_press(world, bot, "Approved", user="bobby_t", user_id=1002).startswith("Recorded")
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.status == "responded"
        decisions = list(Decision.objects.order_by("decided_at").values_list("approver", "outcome", "source"))
        assert decisions == [("ann@example.com", "approved", "telegram"), ("bob@example.com", "approved", "telegram")]
        assert dict(TelegramIdentity.objects.values_list("email", "user_id")) == {
            "ann@example.com": 1001,
            "bob@example.com": 1002,
        }
        pinned = AuditEvent.objects.filter(event_type="config.changed", data__has_key="pinned_user_id")
        assert pinned.count() == 2

    def test_a_username_taken_over_by_another_account_answers_nothing(self, world: World, bot: FakeTelegram) -> None:
        identity = link(world, "ann@example.com", "annie_t")
        identity.user_id = 1001
        identity.save()
        created = world.create(channel="telegram", approvers=["ann@example.com", "bob@example.com"])
        said = tg_press(world, bot, "Approved", user="annie_t", user_id=666)
        assert said.startswith("Not recorded: @annie_t now belongs to another Telegram account")
        assert HITLRequest.objects.get(pk=created["id"]).is_pending and not Decision.objects.exists()
        refused = AuditEvent.objects.get(event_type="response.refused", target_id=created["id"])
        assert refused.data["reason"] == "telegram_account_changed"
        identity.refresh_from_db()
        assert identity.user_id == 1001

    def test_the_requester_linked_on_telegram_cannot_approve(self, world: World, bot: FakeTelegram) -> None:
        link(world, "cid@example.com", "cid_boss")
        created = world.create(
            channel="telegram", approvers=["ann@example.com", "bob@example.com"], requested_by="cid@example.com"
        )
        said = tg_press(world, bot, "Approved", user="cid_boss", user_id=7)
        assert said == "Not recorded: The person who asked for this approval cannot approve it (no self-approval)."
        refused = AuditEvent.objects.get(event_type="response.refused", target_id=created["id"])
        assert refused.data["reason"] == "self_approval" and not Decision.objects.exists()

    def test_a_linked_approver_not_in_this_pool_is_refused(self, world: World, bot: FakeTelegram) -> None:
        link(world, "dan@example.com", "dan_the_man")
        world.create(channel="telegram", approvers=["ann@example.com", "bob@example.com"])
        said = tg_press(world, bot, "Approved", user="dan_the_man", user_id=8)
        assert said == "Not recorded: dan@example.com is not one of this request's approvers."

    def test_a_press_on_a_classic_request_is_unchanged(self, world: World, bot: FakeTelegram) -> None:
        created = world.create(channel="telegram")
        assert tg_press(world, bot, "Approved", user="alice", user_id=42).startswith("Recorded")
        assert HITLRequest.objects.get(pk=created["id"]).resolution.responder == "telegram:@alice"

    def test_a_hostile_sender_gets_a_toast_not_an_error(self, world: World, bot: FakeTelegram) -> None:
        from django.test import Client

        from hitl.channels import telegram
        from tests.hitl.channels.test_telegram import buttons_of

        world.create(channel="telegram", approvers=["ann@example.com", "bob@example.com"])
        data = buttons_of(bot.called("sendMessage")[0])["Approved"]
        for sender in ("alice", ["x"], {"username": ["annie"], "id": "1"}, {"username": "x" * 10_000, "id": True}):
            update = {"update_id": 1, "callback_query": {"id": "1", "from": sender, "message": "m", "data": data}}
            response = Client().post(
                f"/telegram/{world.deployment.pk}/webhook/",
                json.dumps(update),
                content_type="application/json",
                HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=telegram.webhook_secret(world.deployment.pk),
            )
            assert response.status_code == 200 and response.json()["method"] == "answerCallbackQuery"
        assert not Decision.objects.exists()


class TestTelegramIdentityAdmin:
    def test_staff_link_usernames_in_the_deployment_page_and_it_is_audited(self, world: World) -> None:
        from django.contrib.auth import get_user_model
        from django.test import Client
        from django.urls import reverse

        from tests.hitl.admin.test_slack_admin import deployment_form

        ops = Client()
        ops.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        form = {
            **deployment_form(world),
            "telegram_identities-TOTAL_FORMS": 2,
            "telegram_identities-0-email": "Ann@Example.com",
            "telegram_identities-0-username": "@Annie_T",
            "telegram_identities-1-email": "bob@example.com",
            "telegram_identities-1-username": "no",
        }
        bad = ops.post(url, form)
        assert bad.status_code == 200 and "A Telegram username: 5-32 letters" in bad.content.decode()
        assert not TelegramIdentity.objects.exists()
        form["telegram_identities-TOTAL_FORMS"] = 1
        assert ops.post(url, form).status_code == 302
        assert list(TelegramIdentity.objects.values_list("email", "username")) == [("ann@example.com", "annie_t")]
        event = AuditEvent.objects.filter(event_type="config.changed", data__has_key="telegram_identity").get()
        assert event.data == {"telegram_identity": "added", "email": "ann@example.com", "username": "annie_t"}

    def test_view_only_staff_cannot_link_anyone(self, world: World) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Permission
        from django.test import Client
        from django.urls import reverse

        from tests.hitl.admin.test_slack_admin import deployment_form

        viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
        viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_deployment", "change_deployment"]))
        client = Client()
        client.force_login(viewer)
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        form = {
            **deployment_form(world),
            "telegram_identities-TOTAL_FORMS": 1,
            "telegram_identities-0-email": "ann@example.com",
            "telegram_identities-0-username": "annie_t",
        }
        assert client.post(url, form).status_code == 302  # the deployment saved; the identity was not theirs to add
        assert not TelegramIdentity.objects.exists()
