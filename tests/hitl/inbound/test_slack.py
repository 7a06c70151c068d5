"""Slack's interactivity posts (issue 20, SPEC §16): signed presses and modal submissions posted to the
real endpoint, answered through the shared resolve path with source "slack" and the presser's verified
email; forged, stale and replayed posts refused; everyone but the assignee told why, privately."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from audit.models import AuditEvent
from hitl.lib import crypto
from hitl.models import HITLRequest, Resolution
from hitl.services import add_routing_rule
from tests.support.base import World
from tests.support.slack_fake import FakeSlack, block_actions, buttons_of, post_interaction, view_submission
from tests.support.slack_world import (
    ANN,
    BOB,
    CHANNEL,
    OTHER_CHANNEL,
    RULE_SECRET,
    RULE_TOKEN,
    SECRET,
)

pytestmark = pytest.mark.django_db


def ask(world: World, slack_api: FakeSlack, **payload: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    created = world.create(channel="slack", assign_to="ann@example.com", **payload)
    return created, buttons_of(slack_api.called("chat.postMessage")[-1])


def press(world: World, button: dict[str, Any], user: str = ANN, channel: str = CHANNEL, **kw: Any) -> Any:
    payload = block_actions(user, channel, button["action_id"], button["value"])
    return post_interaction(world.deployment.pk, payload, SECRET, **kw)


def ephemerals(slack_api: FakeSlack) -> list[str]:
    return [c.payload["text"] for c in slack_api.called("chat.postEphemeral")]


def refusals() -> list[dict[str, Any]]:
    return [e.data for e in AuditEvent.objects.filter(event_type="response.refused").order_by("id")]


class TestButtonPress:
    def test_a_press_by_the_assignee_resolves_once_with_source_slack(
        self, slack_world: World, slack_api: FakeSlack
    ) -> None:
        created, buttons = ask(slack_world, slack_api, emit_options=["approved", "rejected", "needs_revision"])
        response = press(slack_world, buttons["Needs revision"])
        assert response.status_code == 200 and response.content == b""
        resolution = Resolution.objects.get(request_id=created["id"])
        # The presser's verified email (Slack said "Ann@Example.com"), lower-cased like every assignee.
        assert (resolution.source, resolution.responder, resolution.outcome) == (
            "slack",
            "ann@example.com",
            "needs_revision",
        )
        assert resolution.result["source"] == "slack" and resolution.result["responder"] == "ann@example.com"
        [lookup] = slack_api.called("users.info")
        assert lookup.payload["user"] == ANN
        [ephemeral] = slack_api.called("chat.postEphemeral")
        assert (ephemeral.payload["channel"], ephemeral.payload["user"]) == (CHANNEL, ANN)
        assert ephemeral.payload["text"] == "Recorded: Needs revision. Thank you!"
        # The message now says who answered and how; its buttons are gone.
        [update] = slack_api.called("chat.update")
        blocks = json.dumps(update.payload["blocks"])
        assert '"actions"' not in blocks and "needs_revision" in blocks and "by ann@example.com via slack" in blocks
        # A second press (the same button again, or another) records nothing more.
        press(slack_world, buttons["Approved"])
        assert Resolution.objects.count() == 1 and Resolution.objects.get().outcome == "needs_revision"
        assert "already answered by ann@example.com via slack" in ephemerals(slack_api)[-1]
        assert len(slack_api.called("users.info")) == 1  # cached

    def test_single_choices_and_approval(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(
            slack_world, slack_api, mode="choices", emit_options=None, options=[{"n": "A"}, {"n": "B"}], label_path="n"
        )
        press(slack_world, buttons["B"])
        assert Resolution.objects.get(request_id=created["id"]).result["choice"]["id"] == "option_2"
        created, buttons = ask(slack_world, slack_api, mode="approval", emit_options=None)
        press(slack_world, buttons["Reject"])
        assert Resolution.objects.get(request_id=created["id"]).outcome == "rejected"

    def test_a_request_already_answered_by_email_gets_a_polite_ephemeral(
        self, slack_world: World, slack_api: FakeSlack
    ) -> None:
        from hitl import services

        created, buttons = ask(slack_world, slack_api)
        services.respond_to_request(
            created["id"], services.Answer(outcome="approved"), responder="ann@example.com", source="email"
        )
        response = press(slack_world, buttons["Rejected"])
        assert response.status_code == 200
        [text] = ephemerals(slack_api)
        assert text.startswith("This request was already answered by ann@example.com via email at ")
        assert Resolution.objects.get().source == "email" and Resolution.objects.get().outcome == "approved"
        assert refusals()[-1]["reason"] == "not_pending"
        assert HITLRequest.objects.get(pk=created["id"]).status == "responded"


class TestWhoMayAnswer:
    def test_someone_who_is_not_the_assignee_is_told_why(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["Approved"], user=BOB)
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert ephemerals(slack_api) == [
            "Not recorded: this request is for ann@example.com, and your Slack account's email is bob@example.com."
        ]
        [refused] = AuditEvent.objects.filter(event_type="response.refused")
        assert refused.actor == f"slack:{BOB}" and refused.target_id == created["id"]
        assert refused.data == {"reason": "not_assignee", "email": "bob@example.com"}

    def test_an_unknown_user_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["Approved"], user="U0NOBODY01")
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert ephemerals(slack_api) == ["Not recorded: This app cannot find your Slack account."]
        assert refusals() == [{"reason": "unknown_user"}]

    def test_no_email_or_an_unconfirmed_one_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        slack_api.users["U0NOMAIL01"] = None
        slack_api.users["U0UNCONF01"] = "ann@example.com"
        slack_api.unconfirmed.add("U0UNCONF01")
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["Approved"], user="U0NOMAIL01")
        press(slack_world, buttons["Approved"], user="U0UNCONF01")
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert [r["reason"] for r in refusals()] == ["no_email", "unverified_email"]
        assert "users:read.email" in ephemerals(slack_api)[0]

    def test_deleted_accounts_and_bots_are_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        slack_api.users.update({"U0GONE0001": "ann@example.com", "U0BOT00001": "ann@example.com"})
        slack_api.deleted.add("U0GONE0001")
        slack_api.bots.add("U0BOT00001")
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["Approved"], user="U0GONE0001")
        press(slack_world, buttons["Approved"], user="U0BOT00001")
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert [r["reason"] for r in refusals()] == ["unknown_user", "unknown_user"]

    def test_a_press_in_another_channel_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["Approved"], channel=OTHER_CHANNEL)
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert refusals() == [{"reason": "wrong_channel", "channel_id": OTHER_CHANNEL}]
        assert slack_api.called("users.info") == []

    def test_a_rules_app_cannot_answer_the_deployments_requests(self, slack_world: World, slack_api: FakeSlack) -> None:
        rule = add_routing_rule(
            slack_world.deployment, actor="t", name="Ops", method_pattern="ops_*", assign_to_email="ops@example.com"
        )
        rule.slack_bot_token = crypto.encrypt(RULE_TOKEN)
        rule.slack_signing_secret = crypto.encrypt(RULE_SECRET)
        rule.save()
        created, buttons = ask(slack_world, slack_api)  # posted by the deployment's app
        payload = block_actions(ANN, CHANNEL, buttons["Approved"]["action_id"], buttons["Approved"]["value"])
        assert post_interaction(slack_world.deployment.pk, payload, RULE_SECRET).status_code == 200
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert refusals()[-1]["reason"] == "wrong_channel"

    def test_my_review_link_sends_the_magic_link_to_the_assignee_only(
        self, slack_world: World, slack_api: FakeSlack
    ) -> None:
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["My review link"], user=BOB)
        press(slack_world, buttons["My review link"])
        refused, link = ephemerals(slack_api)
        assert "/r/" not in refused
        assert f"https://hitl.example.test/r/{created['id']}/" in link
        assert HITLRequest.objects.get(pk=created["id"]).is_pending


class TestModals:
    def test_with_a_comment_opens_a_modal_and_its_submission_answers(
        self, slack_world: World, slack_api: FakeSlack
    ) -> None:
        created, buttons = ask(slack_world, slack_api, emit_options=["approved", "rejected", "needs_revision"])
        response = press(slack_world, buttons["With a comment…"])
        assert response.status_code == 200
        [opened] = slack_api.called("views.open")
        assert opened.payload["trigger_id"] == "T-1"
        view = opened.payload["view"]
        assert view["type"] == "modal" and view["callback_id"] == "hitl_answer"
        select = view["blocks"][1]["element"]
        assert [o["text"]["text"] for o in select["options"]] == ["Approved", "Rejected", "Needs revision"]
        assert Resolution.objects.count() == 0  # opening the modal answers nothing
        values = {
            "answer": {"value": {"type": "static_select", "selected_option": {"value": "2"}}},
            "comment": {"value": {"type": "plain_text_input", "value": "Tighten the intro."}},
        }
        response = post_interaction(slack_world.deployment.pk, view_submission(ANN, view, values), SECRET)
        assert response.status_code == 200 and response.content == b""  # closes the modal
        resolution = Resolution.objects.get(request_id=created["id"])
        assert (resolution.outcome, resolution.result["feedback"], resolution.responder) == (
            "needs_revision",
            "Tighten the intro.",
            "ann@example.com",
        )
        assert ephemerals(slack_api) == ["Recorded: Needs revision. Thank you!"]

    def test_text_mode_answers_in_a_modal(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api, mode="text", emit_options=None)
        press(slack_world, buttons["Answer…"])
        view = slack_api.called("views.open")[0].payload["view"]
        values = {"text": {"value": {"type": "plain_text_input", "value": "Ship it on Monday."}}}
        post_interaction(slack_world.deployment.pk, view_submission(ANN, view, values), SECRET)
        result = Resolution.objects.get(request_id=created["id"]).result
        assert (result["text"], result["source"]) == ("Ship it on Monday.", "slack")

    def test_a_submission_by_someone_else_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api, mode="text", emit_options=None)
        press(slack_world, buttons["Answer…"], user=BOB)  # anyone may open it …
        view = slack_api.called("views.open")[0].payload["view"]
        values = {"text": {"value": {"type": "plain_text_input", "value": "Sure."}}}
        post_interaction(slack_world.deployment.pk, view_submission(BOB, view, values), SECRET)
        assert HITLRequest.objects.get(pk=created["id"]).is_pending  # … only the assignee's answer counts
        assert refusals()[-1]["reason"] == "not_assignee"

    def test_no_modal_for_a_request_already_answered(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api)
        press(slack_world, buttons["Approved"])
        press(slack_world, buttons["With a comment…"])
        assert slack_api.called("views.open") == []
        assert "already answered" in ephemerals(slack_api)[-1]


class TestAuthentication:
    def post(self, world: World, slack_api: FakeSlack, **kw: Any) -> Any:
        _, buttons = ask(world, slack_api)
        button = buttons["Approved"]
        return post_interaction(
            world.deployment.pk, block_actions(ANN, CHANNEL, button["action_id"], button["value"]), SECRET, **kw
        )

    def test_a_wrong_signature_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        response = self.post(slack_world, slack_api, signature="v0=" + "0" * 64)
        assert response.status_code == 401 and response.json()["code"] == "bad_signature"
        assert self.post(slack_world, slack_api, signature="").json()["code"] == "bad_signature"
        assert Resolution.objects.count() == 0 and slack_api.called("users.info") == []
        assert refusals() == [{"reason": "bad_signature"}, {"reason": "bad_signature"}]

    def test_a_flood_of_forgeries_is_audited_only_so_far(self, slack_world: World, slack_api: FakeSlack) -> None:
        for _ in range(25):
            response = post_interaction(slack_world.deployment.pk, {"type": "block_actions"}, "not-the-secret")
            assert response.status_code == 401
        assert refusals() == [{"reason": "bad_signature"}] * 20

    def test_another_deployments_secret_does_not_open_this_one(self, slack_world: World, slack_api: FakeSlack) -> None:
        _, buttons = ask(slack_world, slack_api)
        payload = block_actions(ANN, CHANNEL, buttons["Approved"]["action_id"], buttons["Approved"]["value"])
        assert post_interaction(slack_world.other.pk, payload, SECRET).status_code == 401  # no Slack there
        assert post_interaction(999999, payload, SECRET).status_code == 404
        assert Resolution.objects.count() == 0

    def test_an_old_timestamp_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        response = self.post(slack_world, slack_api, timestamp=int(time.time()) - 301)
        assert response.status_code == 401 and response.json()["code"] == "stale_timestamp"
        future = self.post(slack_world, slack_api, timestamp=int(time.time()) + 360)
        assert future.json()["code"] == "stale_timestamp"
        assert Resolution.objects.count() == 0

    def test_a_replayed_request_is_refused(self, slack_world: World, slack_api: FakeSlack) -> None:
        _, buttons = ask(slack_world, slack_api)
        payload = block_actions(BOB, CHANNEL, buttons["Approved"]["action_id"], buttons["Approved"]["value"])
        stamp = int(time.time())
        assert post_interaction(slack_world.deployment.pk, payload, SECRET, timestamp=stamp).status_code == 200
        replay = post_interaction(slack_world.deployment.pk, payload, SECRET, timestamp=stamp)
        assert replay.status_code == 401 and replay.json()["code"] == "replayed"
        assert len(ephemerals(slack_api)) == 1  # the replay was not processed

    def test_authentic_payloads_we_do_not_act_on_are_acknowledged(self, slack_world: World) -> None:
        for payload in ({"type": "view_closed", "view": {}}, {"type": "shortcut"}, {"type": "block_actions"}):
            assert post_interaction(slack_world.deployment.pk, payload, SECRET).status_code == 200
        hostile: list[dict[str, Any]] = [
            {
                "type": "block_actions",
                "actions": [{"action_id": "hitl_option_0", "value": "x"}],
                "user": "u",
                "channel": "c",
            },
            {"type": "block_actions", "actions": "x", "channel": []},
            {"type": "block_actions", "actions": [{"action_id": "hitl_comment", "value": "zz"}], "channel": 5},
            {"type": "view_submission", "view": "x"},
            {"type": "view_submission", "view": {"callback_id": "hitl_answer", "private_metadata": 5, "state": "x"}},
        ]
        for odd in hostile:
            assert post_interaction(slack_world.deployment.pk, odd, SECRET).status_code == 200
        assert Resolution.objects.count() == 0
        bad = post_interaction(slack_world.deployment.pk, {}, SECRET, body="payload=not-json")
        assert bad.status_code == 400 and bad.json()["code"] == "invalid"

    def test_a_forged_button_value_changes_nothing(self, slack_world: World, slack_api: FakeSlack) -> None:
        created, buttons = ask(slack_world, slack_api)
        rid = created["id"].replace("-", "")
        for value in (f"{rid}:9", "nothex:0", f"{rid}", ""):
            press(slack_world, {"action_id": "hitl_option_0", "value": value})
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        assert set(ephemerals(slack_api)) == {"This button is not valid any more."}
