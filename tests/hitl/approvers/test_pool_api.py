"""Several approvers through the API (SPEC §13): create with a pool, decide as each approver, the
policies, the refusals and their codes, the result's `decisions`, `decision_recorded` webhooks."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from hitl.models import Approver, Decision, HITLRequest, Resolution, Webhook, WebhookDelivery
from tests.support.base import User, World

pytestmark = pytest.mark.django_db

POOL = ["ann@example.com", "bob@example.com", "cid@example.com"]


def approver(world: World, email: str) -> APIClient:
    """A signed-in approver with the respond permission on the deployment."""
    user = User.objects.filter(email=email).first() or User.objects.create_user(email.split("@")[0], email, "pw")
    assign_perm("accounts.respond_to_human_feedback", user, world.deployment)
    client = APIClient()
    client.force_authenticate(user)
    return client


def decide(world: World, email: str, request_id: str, **body: Any) -> Any:
    return approver(world, email).post(f"/api/v1/requests/{request_id}/respond/", body, format="json")


def create_bad(world: World, **payload: Any) -> Any:
    body = {"message": "Please review", "mode": "approval", **payload}
    return world.client_for("key").post("/api/v1/requests/", body, format="json")


class TestCreate:
    def test_it_records_the_pool_with_groups_resolved(self, world: World) -> None:
        group = Group.objects.create(name="finance")
        for name in ("fay", "gus"):
            User.objects.create_user(name, f"{name}@example.com", "pw").groups.add(group)
        User.objects.create_user("noemail", "", "pw").groups.add(group)
        created = world.create(approvers=["ann@example.com", "group:finance"], policy="quorum", required=2)
        assert created["approvers"] == ["ann@example.com", "group:finance"]
        assert (created["policy"], created["required"], created["veto"]) == ("quorum", 2, True)
        assert [s["email"] for s in created["pool"]] == ["ann@example.com", "fay@example.com", "gus@example.com"]
        assert created["pool"][1]["via_group"] == "group:finance"
        assert created["assigned_to_email"] == "ann@example.com"
        assert created["assignment"]["step"] == "pool"
        assert created["result"]["decisions"] == []
        assigned = AuditEvent.objects.get(event_type=EventType.REQUEST_ASSIGNED, target_id=created["id"])
        assert assigned.data["approvers"] == ["ann@example.com", "fay@example.com", "gus@example.com"]
        assert assigned.data["groups"]["gus@example.com"] == "group:finance"

    def test_a_classic_request_has_no_pool(self, world: World) -> None:
        created = world.create()
        assert (created["policy"], created["approvers"], created["pool"]) == ("", [], [])
        assert "decisions" not in created["result"]
        assert not Approver.objects.exists()

    @pytest.mark.parametrize(
        "payload, code, field",
        [
            ({"approvers": []}, "empty_pool", "approvers"),
            ({"approvers": ["group:nobody-here"]}, "unknown_group", "approvers"),
            ({"approvers": ["group:empty"]}, "empty_group", "approvers"),
            ({"approvers": ["not an email"]}, "invalid_approver", "approvers"),
            ({"approvers": POOL, "policy": "quorum", "required": 4}, "required_too_large", "required"),
            ({"approvers": POOL, "policy": "quorum"}, "required_missing", "required"),
            ({"approvers": POOL, "required": 2}, "required_unused", "required"),
            ({"approvers": ["ann@example.com"], "requested_by": "ANN@example.com"}, "self_approval", "requested_by"),
            ({"assign_to": "ann@example.com", "requested_by": "ann@example.com"}, "self_approval", "requested_by"),
        ],
    )
    def test_bad_pools_are_refused_with_a_stable_code(
        self, world: World, payload: dict[str, Any], code: str, field: str
    ) -> None:
        Group.objects.create(name="empty").user_set.add(User.objects.create_user("blank", "", "pw"))
        response = create_bad(world, **payload)
        assert response.status_code == 400, response.content
        assert response.json()["code"] == code
        assert field in response.json()["errors"]
        assert not HITLRequest.objects.exists()

    def test_the_requester_is_left_out_of_the_pool(self, world: World) -> None:
        created = world.create(approvers=POOL, requested_by="bob@example.com", policy="all")
        assert [s["email"] for s in created["pool"]] == ["ann@example.com", "cid@example.com"]
        assert created["requested_by"] == "bob@example.com"


class TestPolicies:
    def test_a_quorum_of_two_of_three_resolves_once_with_both_decisions(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="quorum", required=2)
        first = decide(world, "ann@example.com", created["id"], feedback="approved: fine")
        assert first.status_code == 200, first.content
        assert first.json()["outcome"] is None and len(first.json()["decisions"]) == 1
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        second = decide(world, "cid@example.com", created["id"], outcome="approved", feedback="ok")
        result = second.json()
        assert (result["outcome"], result["responder"], result["feedback"]) == ("approved", "cid@example.com", "ok")
        assert [d["responder"] for d in result["decisions"]] == ["ann@example.com", "cid@example.com"]
        assert [d["outcome"] for d in result["decisions"]] == ["approved", "approved"]
        assert Resolution.objects.filter(request_id=created["id"]).count() == 1
        late = decide(world, "bob@example.com", created["id"], outcome="rejected")
        assert late.status_code == 409 and late.json()["code"] == "not_pending"
        shown = world.client_for("key").get(f"/api/v1/requests/{created['id']}/result/").json()
        assert shown["status"] == "responded" and len(shown["decisions"]) == 2

    def test_a_veto_resolves_at_once(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all", mode="approval", emit_options=None)
        decide(world, "ann@example.com", created["id"], outcome="approved")
        vetoed = decide(world, "bob@example.com", created["id"], outcome="rejected", feedback="no").json()
        assert vetoed["outcome"] == "rejected" and vetoed["metadata"]["rejected"] is True
        assert vetoed["metadata"]["resolved_by"] == "veto"
        assert HITLRequest.objects.get(pk=created["id"]).status == "responded"

    def test_all_waits_for_everyone(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all", mode="approval", emit_options=None)
        for email in POOL[:2]:
            assert decide(world, email, created["id"], outcome="approved").json()["outcome"] is None
            assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        done = decide(world, POOL[2], created["id"], outcome="approved").json()
        assert done["outcome"] == "approved" and len(done["decisions"]) == 3

    def test_emit_all_resolves_with_most_decisions_once_unreachable(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="quorum", required=2, emit_options=["a", "b", "c"])
        decide(world, POOL[0], created["id"], outcome="b")
        decide(world, POOL[1], created["id"], outcome="c")
        last = decide(world, POOL[2], created["id"], outcome="a").json()
        # Nobody can reach 2 any more: the tie goes to the earliest outcome.
        assert last["outcome"] == "b" and last["metadata"]["resolved_by"] == "unreachable"
        assert last["responder"] == POOL[2]

    def test_any_with_one_approver_resolves_on_the_first_decision(self, world: World) -> None:
        created = world.create(approvers=["ann@example.com"])
        result = decide(world, "ann@example.com", created["id"], outcome="approved").json()
        assert result["outcome"] == "approved" and result["decisions"][0]["responder"] == "ann@example.com"


class TestRefusals:
    def test_not_an_approver_already_decided_and_self_approval_are_refused_and_audited(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all", requested_by="rex@example.com")
        rex = User.objects.create_user("rex", "rex@example.com", "pw")
        assign_perm("accounts.manage_human_feedback", rex, world.deployment)
        outsider = decide(world, "responder@example.com", created["id"], outcome="approved")
        assert outsider.status_code == 404  # a respond-only user who is not in the pool cannot even see it
        decide(world, "ann@example.com", created["id"], outcome="approved")
        again = decide(world, "ann@example.com", created["id"], outcome="rejected")
        assert again.status_code == 409 and again.json()["code"] == "already_decided"
        self_approval = decide(world, "rex@example.com", created["id"], outcome="approved")
        assert self_approval.status_code == 403 and self_approval.json()["code"] == "self_approval"
        behalf_self = decide(
            world, "rex@example.com", created["id"], outcome="approved", on_behalf_of="bob@example.com"
        )
        assert behalf_self.status_code == 200  # a manager may speak for a listed approver
        reasons = list(
            AuditEvent.objects.filter(event_type=EventType.RESPONSE_REFUSED, target_id=created["id"]).values_list(
                "data__reason", flat=True
            )
        )
        assert reasons == ["already_decided", "self_approval"]
        assert Decision.objects.get(request_id=created["id"], approver="bob@example.com").on_behalf_of

    def test_manager_with_respond_must_name_an_approver(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        boss = approver(world, "manager@example.com")
        response = boss.post(f"/api/v1/requests/{created['id']}/respond/", {"outcome": "approved"}, format="json")
        assert response.status_code == 403 and response.json()["code"] == "not_an_approver"
        on_behalf = boss.post(
            f"/api/v1/requests/{created['id']}/respond/",
            {"outcome": "approved", "on_behalf_of": "bob@example.com"},
            format="json",
        )
        assert on_behalf.status_code == 200
        event = AuditEvent.objects.get(event_type=EventType.DECISION_RECORDED, target_id=created["id"])
        assert (event.actor, event.data["on_behalf_of"]) == ("manager@example.com", "bob@example.com")

    def test_a_respond_only_approver_may_not_speak_for_another(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        response = decide(world, "ann@example.com", created["id"], outcome="approved", on_behalf_of="bob@example.com")
        assert response.status_code == 403 and response.json()["code"] == "not_a_manager"


class TestIntegratingApp:
    def test_the_callback_answers_an_any_request_as_itself(self, world: World) -> None:
        created = world.create(approvers=POOL)
        result = APIClient().post(urlparse(created["callback_url"]).path, {"outcome": "approved"}, format="json")
        assert result.status_code == 200 and result.json()["responder"] == "callback:Content Review"

    def test_the_callback_must_name_an_approver_otherwise(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="quorum", required=2, requested_by="rex@example.com")
        path = urlparse(created["callback_url"]).path
        refused = APIClient().post(path, {"outcome": "approved"}, format="json")
        assert refused.status_code == 403 and refused.json()["code"] == "approver_required"
        stranger = APIClient().post(path, {"outcome": "approved", "on_behalf_of": "zed@example.com"}, format="json")
        assert stranger.status_code == 403 and stranger.json()["code"] == "not_an_approver"
        requester = APIClient().post(path, {"outcome": "approved", "on_behalf_of": "rex@example.com"}, format="json")
        assert requester.status_code == 403 and requester.json()["code"] == "self_approval"
        ok = APIClient().post(path, {"outcome": "approved", "on_behalf_of": "ann@example.com"}, format="json")
        assert ok.status_code == 200 and ok.json()["decisions"][0]["responder"] == "ann@example.com"

    def test_a_full_key_names_an_approver(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        client = world.client_for("key")
        url = f"/api/v1/requests/{created['id']}/respond/"
        assert client.post(url, {"outcome": "approved"}, format="json").json()["code"] == "approver_required"
        assert client.post(url, {"outcome": "approved", "on_behalf_of": POOL[0]}, format="json").status_code == 200


class TestDecisionWebhook:
    def test_each_decision_that_does_not_resolve_is_announced(self, world: World) -> None:
        from hitl.channels.webhook_outbox import create_webhook

        create_webhook(world.deployment, url="https://hooks.example.com/x", actor="t")
        created = world.create(approvers=POOL, policy="all")
        decide(world, POOL[0], created["id"], outcome="approved")
        decide(world, POOL[1], created["id"], outcome="approved")
        decide(world, POOL[2], created["id"], outcome="approved")
        events = list(WebhookDelivery.objects.order_by("id").values_list("event", flat=True))
        assert events == ["new_request", "decision_recorded", "decision_recorded", "request_responded"]
        import json

        body = json.loads(WebhookDelivery.objects.filter(event="decision_recorded").order_by("id")[1].body)
        assert body["decision"]["responder"] == POOL[1]
        assert body["waiting_for"] == [POOL[2]]
        assert Webhook.objects.count() == 1


class TestPoolRules:
    def test_a_rule_assigns_a_pool_with_its_policy(self, world: World) -> None:
        from hitl.services import add_routing_rule

        group = Group.objects.create(name="finance")
        User.objects.create_user("fay", "fay@example.com", "pw").groups.add(group)
        add_routing_rule(
            world.deployment,
            actor="t",
            name="big",
            method_pattern="approve_*",
            approvers=["ann@example.com", "group:finance"],
            policy="all",
        )
        created = world.create(method_name="approve_payment")
        assert created["assignment"]["step"] == "rule_pool" and created["policy"] == "all"
        assert [s["email"] for s in created["pool"]] == ["ann@example.com", "fay@example.com"]

    @pytest.mark.parametrize(
        "fields, code",
        [
            ({"approvers": ["group:empty"]}, "empty_group"),
            ({"approvers": ["ann@example.com"], "policy": "quorum", "required": 2}, "required_too_large"),
        ],
    )
    def test_a_rule_with_a_bad_pool_is_refused_at_save(self, world: World, fields: dict[str, Any], code: str) -> None:
        from django.core.exceptions import ValidationError

        from hitl.services import add_routing_rule

        Group.objects.create(name="empty")
        with pytest.raises(ValidationError) as caught:
            add_routing_rule(world.deployment, actor="t", name="bad", **fields)
        assert code in str(caught.value)

    def test_the_audit_export_shows_each_decision(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        decide(world, POOL[0], created["id"], outcome="approved", feedback="fine")
        decide(world, POOL[1], created["id"], outcome="rejected")
        response = world.client_for("key").get("/api/v1/audit/?format=jsonl")
        exported = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
        lines = [line for line in exported.splitlines() if '"decision.recorded"' in line]
        assert len(lines) == 2 and POOL[0] in lines[0] and "fine" in lines[0] and POOL[1] in lines[1]


class TestAnalytics:
    def test_decisions_are_counted_per_approver_with_their_response_time(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        decide(world, POOL[0], created["id"], outcome="approved")
        decide(world, POOL[1], created["id"], outcome="approved")
        report = world.client_for("key").get("/api/v1/analytics/").json()
        rows = {row["approver"]: row for row in report["by_approver"]}
        assert set(rows) == set(POOL[:2]) and rows[POOL[0]]["decisions"] == 1
        assert rows[POOL[0]]["mean_response_seconds"] is not None
