"""SPEC §10 (amended): answering needs the respond permission; manage and respond together answer any
request of the deployment, on behalf of its assignee; refused reassignments and delegations are audited."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from guardian.shortcuts import assign_perm

from audit.models import AuditEvent
from hitl.models import HITLRequest, Resolution
from tests.support.base import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(world: World):
    user = get_user_model().objects.create_user("lead", "lead@example.com", "pw")
    assign_perm("accounts.manage_human_feedback", user, world.deployment)
    assign_perm("accounts.respond_to_human_feedback", user, world.deployment)
    return user


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class TestManageAloneDoesNotAnswer:
    def test_it_refuses_the_manager_through_the_api(self, world: World) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        response = world.client_for("manager").post(
            f"/api/v1/requests/{request_id}/respond/", {"outcome": "approved"}, format="json"
        )
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_it_refuses_the_manager_on_the_page(self, world: World) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        response = _page(world.manager).post(f"/requests/{request_id}/answer/", {"outcome": "approved"})
        assert response.status_code == 403
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_it_offers_the_manager_no_answer_form(self, world: World) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        page = _page(world.manager).get(f"/requests/{request_id}/")
        assert page.status_code == 200
        assert f"/requests/{request_id}/answer/" not in page.content.decode()


class TestManageAndRespondAnswersOnBehalf:
    def test_it_records_the_api_answer_on_behalf_of_the_assignee(self, world: World, lead) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        client = world.client_for("stranger")
        client.force_authenticate(lead)
        response = client.post(f"/api/v1/requests/{request_id}/respond/", {"outcome": "approved"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["responder"] == "lead@example.com"
        assert response.json()["metadata"]["on_behalf_of"] == "responder@example.com"
        event = AuditEvent.objects.get(target_id=request_id, event_type="response.submitted")
        assert event.data["on_behalf_of"] == "responder@example.com"

    def test_it_records_the_page_answer_on_behalf_of_the_assignee(self, world: World, lead) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        response = _page(lead).post(f"/requests/{request_id}/answer/", {"outcome": "approved"})
        assert response.status_code == 302
        resolution = Resolution.objects.get(request_id=request_id)
        assert resolution.responder == "lead@example.com"
        assert resolution.result["metadata"]["on_behalf_of"] == "responder@example.com"

    def test_it_records_no_proxy_when_the_lead_answers_their_own(self, world: World, lead) -> None:
        request_id = world.create(assign_to="lead@example.com")["id"]
        _page(lead).post(f"/requests/{request_id}/answer/", {"outcome": "approved"})
        assert "on_behalf_of" not in Resolution.objects.get(request_id=request_id).result["metadata"]


class TestRefusedAssignmentChangesAreAudited:
    def test_it_audits_a_refused_reassignment(self, world: World) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        world.client_for("key").post(f"/api/v1/requests/{request_id}/cancel/", {}, format="json")
        response = world.client_for("manager").post(
            f"/api/v1/requests/{request_id}/reassign/", {"email": "x@example.com"}, format="json"
        )
        assert response.status_code == 409 and response.json()["code"] == "not_pending"
        event = AuditEvent.objects.filter(target_id=request_id, event_type="response.refused").get()
        assert event.data["action"] == "reassign" and event.actor == "manager@example.com"

    def test_it_audits_a_refused_delegation(self, world: World) -> None:
        request_id = world.create(assign_to="responder@example.com")["id"]
        world.client_for("key").post(f"/api/v1/requests/{request_id}/cancel/", {}, format="json")
        _page(world.responder).post(f"/requests/{request_id}/delegate/", {"delegate-email": "y@example.com"})
        event = AuditEvent.objects.filter(target_id=request_id, event_type="response.refused").get()
        assert event.data["action"] == "delegate"
