"""The admin for ops staff (issue 5): the routing tester, request actions, HITL settings, permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from hitl.models import AssignmentStep, HITLRequest, Resolution
from hitl.services import add_routing_rule
from tests.support.base import World

pytestmark = pytest.mark.django_db

TESTER = "/admin/hitl/routingrule/test/"


@pytest.fixture
def ops(world: World) -> Client:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client


def rules(world: World) -> tuple[Any, Any, Any]:
    cfo = add_routing_rule(
        world.deployment,
        actor="t",
        name="Big expenses to the CFO",
        priority=10,
        method_pattern="approve_*",
        conditions="amount >= 10000",
        assign_to_email="cfo@example.com",
    )
    owner = add_routing_rule(
        world.deployment,
        actor="t",
        name="Account owner",
        priority=20,
        method_pattern="approve_*",
        assign_from_input="account.owner.email",
        assign_to_email="finance@example.com",
    )
    off = add_routing_rule(
        world.deployment, actor="t", name="Old rule", priority=5, method_pattern="*", assign_to_email="x@example.com"
    )
    off.enabled = False
    off.save()
    return cfo, owner, off


class TestRoutingTester:
    def test_it_shows_the_deciding_rule_and_email(self, world: World, ops: Client) -> None:
        cfo, owner, _ = rules(world)
        page = ops.post(
            TESTER,
            {"deployment": world.deployment.pk, "method_name": "approve_payment", "state": '{"amount": 12000}'},
        )
        assert page.status_code == 200
        assert page.context["assignment"].email == "cfo@example.com"
        assert page.context["assignment"].rule == cfo
        verdicts = {v.rule.name: v for v in page.context["verdicts"]}
        assert verdicts["Big expenses to the CFO"].decides
        assert verdicts["Account owner"].note == "not tried: an earlier rule matched"
        assert verdicts["Old rule"].note == "switched off"
        assert "cfo@example.com" in page.content.decode()

    def test_state_paths_explicit_assignees_and_the_creator_fallback(self, world: World, ops: Client) -> None:
        rules(world)
        base = {"deployment": world.deployment.pk, "method_name": "approve_refund"}
        by_input = ops.post(
            TESTER, {**base, "state": '{"amount": 5, "account": {"owner": {"email": "Ann@X.example"}}}'}
        )
        assert by_input.context["assignment"].email == "ann@x.example"
        assert by_input.context["assignment"].step == AssignmentStep.RULE_INPUT
        no_match = ops.post(TESTER, {**base, "method_name": "review_content"})
        assert (no_match.context["assignment"].email, no_match.context["assignment"].step) == (
            "creator@example.com",
            "creator",
        )
        explicit = ops.post(TESTER, {**base, "assign_to": "boss@example.com"})
        assert explicit.context["assignment"].email == "boss@example.com"

    def test_bad_state_is_a_form_error(self, world: World, ops: Client) -> None:
        page = ops.post(TESTER, {"deployment": world.deployment.pk, "state": "[1, 2"})
        assert "Not valid JSON" in page.content.decode() and "assignment" not in page.context
        page = ops.post(TESTER, {"deployment": world.deployment.pk, "state": "[1, 2]"})
        assert "must be a JSON object" in page.content.decode()

    def test_a_rule_page_links_to_testing_that_rule(self, world: World, ops: Client) -> None:
        cfo, _, _ = rules(world)
        change = ops.get(reverse("admin:hitl_routingrule_change", args=[cfo.pk])).content.decode()
        assert f"{TESTER}?rule={cfo.pk}" in change
        page = ops.get(f"{TESTER}?rule={cfo.pk}")
        assert page.context["form"].initial["deployment"] == world.deployment.pk
        assert "Test routing" in ops.get(reverse("admin:hitl_routingrule_changelist")).content.decode()
        deployment_page = ops.get(reverse("admin:accounts_deployment_change", args=[world.deployment.pk]))
        assert f"{TESTER}?deployment={world.deployment.pk}" in deployment_page.content.decode()

    def test_it_is_for_staff_only(self, world: World) -> None:
        assert Client().get(TESTER).status_code == 302
        client = Client()
        client.force_login(world.manager)  # not staff
        assert client.get(TESTER)["Location"].startswith("/admin/login/")


class TestRequestActions:
    def changelist(self) -> str:
        return reverse("admin:hitl_hitlrequest_changelist")

    def test_reassign_asks_for_the_email_then_goes_through_the_service(self, world: World, ops: Client) -> None:
        req = world.create(assign_to="responder@example.com")
        form = ops.post(self.changelist(), {"action": "reassign_selected", "_selected_action": [req["id"]]})
        assert form.status_code == 200 and "New assignee" in form.content.decode()
        mail.outbox.clear()
        done = ops.post(
            self.changelist(),
            {
                "action": "reassign_selected",
                "_selected_action": [req["id"]],
                "apply": "1",
                "email": "Lead@Example.com",
                "note": "holiday cover",
            },
            follow=True,
        )
        assert "Reassigned 1 request(s) to lead@example.com" in done.content.decode()
        obj = HITLRequest.objects.get(pk=req["id"])
        assert (obj.assigned_to_email, obj.assignment_step) == ("lead@example.com", "reassigned")
        event = AuditEvent.objects.get(event_type="request.reassigned")
        assert (event.actor, event.data["note"]) == ("ops", "holiday cover")
        assert [m.to for m in mail.outbox] == [["lead@example.com"]]

    def test_resend_and_cancel(self, world: World, ops: Client) -> None:
        req = world.create(assign_to="responder@example.com")
        mail.outbox.clear()
        ops.post(self.changelist(), {"action": "resend_selected", "_selected_action": [req["id"]]})
        assert [m.to for m in mail.outbox] == [["responder@example.com"]]
        ops.post(self.changelist(), {"action": "cancel_selected", "_selected_action": [req["id"]]})
        assert Resolution.objects.get(request_id=req["id"]).status == "cancelled"

    def test_filters_search_and_view_on_site(self, world: World, ops: Client) -> None:
        req = world.create(assign_to="responder@example.com", method_name="review_content")
        page = ops.get(f"{self.changelist()}?q=review_content&status__exact=pending&overdue__exact=0")
        assert page.status_code == 200 and req["id"] in page.content.decode()
        change = ops.get(reverse("admin:hitl_hitlrequest_change", args=[req["id"]])).content.decode()
        assert "View on site" in change


class TestDeploymentSettings:
    def form_data(self, world: World, **changes: Any) -> dict[str, Any]:
        dep = world.deployment
        data = {
            "organization": dep.organization_id,
            "name": dep.name,
            "creator": dep.creator_id,
            "email_notifications": "on",
            "link_ttl_seconds": 3600,
            "sla_target_minutes": 60,
            "reminder_after_minutes": 30,
            "escalation_after_minutes": "",
            "escalation_emails": "[]",
            "auto_response_enabled": "on",
            "auto_response_timeout_minutes": 120,
            "auto_response_default_outcome": "approved",
            "auto_response_emit_options": '["approved", "rejected"]',
            "routing_rules-TOTAL_FORMS": 0,
            "routing_rules-INITIAL_FORMS": 0,
            "telegram_identities-TOTAL_FORMS": 0,
            "telegram_identities-INITIAL_FORMS": 0,
            "routing_rules-MIN_NUM_FORMS": 0,
            "routing_rules-MAX_NUM_FORMS": 1000,
        }
        data.update(changes)
        return {k: v for k, v in data.items() if v is not None}

    def test_hitl_settings_are_saved_and_audited(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        page = ops.get(url).content.decode()
        for section in ("Notifications", "SLA", "Reminders and escalation", "Auto-response", "Link ttl seconds"):
            assert section.lower() in page.lower(), section
        response = ops.post(url, self.form_data(world))
        assert response.status_code == 302, response.content.decode()[:3000]
        world.deployment.refresh_from_db()
        assert (world.deployment.link_ttl_seconds, world.deployment.reminder_after_minutes) == (3600, 30)
        assert AuditEvent.objects.filter(event_type="config.changed", actor="ops").exists()

    def test_the_default_outcome_must_be_an_emit_option(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_change", args=[world.deployment.pk])
        response = ops.post(url, self.form_data(world, auto_response_default_outcome="maybe"))
        assert response.status_code == 200
        assert "is not one of the emit options" in response.content.decode()


class TestPermissionPages:
    def test_granting_and_revoking_is_audited(self, world: World, ops: Client) -> None:
        url = reverse("admin:accounts_deployment_permissions", args=[world.deployment.pk])
        assert ops.get(url).status_code == 200
        user_url = f"{url}user-manage/{world.stranger.pk}/"
        response = ops.post(user_url, {"permissions": ["respond_to_human_feedback"]})
        assert response.status_code == 302
        assert world.stranger.has_perm("accounts.respond_to_human_feedback", world.deployment)
        event = AuditEvent.objects.get(event_type="permission.changed")
        assert event.data == {"user": "stranger", "added": ["respond_to_human_feedback"], "removed": []}
        assert event.deployment_id == world.deployment.pk and event.actor == "ops"

        group = Group.objects.create(name="reviewers")
        ops.post(f"{url}group-manage/{group.pk}/", {"permissions": ["manage_human_feedback"]})
        assert AuditEvent.objects.filter(event_type="permission.changed").last().data["group"] == "reviewers"
