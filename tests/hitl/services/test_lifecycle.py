"""A request from creation to its one resolution, in every mode, through the REST API."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from hitl.models import HITLRequest, Resolution
from tests.support.base import World

pytestmark = pytest.mark.django_db


def respond(world: World, request_id: str, who: str = "key", **body: object):
    return world.client_for(who).post(f"/api/v1/requests/{request_id}/respond/", body, format="json")


class TestEmitMode:
    def test_it_creates_routes_and_answers_once(self, world: World) -> None:
        created = world.create(method_name="review_content", content="# Draft", state={"topic": "q1"})
        assert created["status"] == "pending"
        assert created["mode"] == "emit"
        assert created["assigned_to_email"] == "creator@example.com"
        assert created["assignment"]["step"] == "creator"
        assert created["callback_url"].startswith("https://hitl.example.test/api/v1/callbacks/")
        assert created["result"]["outcome"] is None and created["result"]["source"] is None

        response = respond(world, created["id"], feedback="Approved! Great article.")
        assert response.status_code == 200, response.content
        result = response.json()
        assert result["outcome"] == "approved"
        assert result["feedback"] == "Great article."
        assert result["source"] == "api"
        assert result["response_type"] == "emit"
        assert result["method_name"] == "review_content"
        assert result["output"] == "# Draft"
        assert result["responder"].startswith("api-key:")

        again = respond(world, created["id"], outcome="rejected")
        assert again.status_code == 409
        assert again.json()["code"] == "not_pending"
        assert "already answered" in again.json()["detail"]
        assert Resolution.objects.count() == 1
        assert AuditEvent.objects.filter(event_type="response.refused", target_id=created["id"]).count() == 1

    def test_it_matches_outcomes_case_and_punctuation_insensitively(self, world: World) -> None:
        for said, expected in [
            ("APPROVED", "approved"),
            ("approved.", "approved"),
            ("Needs revision!", "needs_revision"),
        ]:
            created = world.create(emit_options=["approved", "rejected", "needs_revision"])
            response = respond(world, created["id"], outcome=said)
            assert response.status_code == 200, response.content
            assert response.json()["outcome"] == expected

    def test_it_refuses_an_unknown_outcome_and_keeps_the_request_pending(self, world: World) -> None:
        created = world.create()
        response = respond(world, created["id"], outcome="maybe")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_outcome"
        assert response.json()["options"] == ["approved", "rejected"]
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        assert AuditEvent.objects.filter(event_type="response.refused", target_id=created["id"]).exists()

    def test_it_takes_free_form_feedback_with_a_null_outcome(self, world: World) -> None:
        created = world.create()
        result = respond(world, created["id"], feedback="Could you shorten the second paragraph?").json()
        assert result["outcome"] is None
        assert result["feedback"] == "Could you shorten the second paragraph?"

    def test_result_long_polls_and_returns_the_empty_shape_while_pending(self, world: World) -> None:
        created = world.create(metadata={"ticket": 7})
        response = world.client_for("key").get(f"/api/v1/requests/{created['id']}/result/?wait=1")
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "pending"
        assert body["choice"] == {"id": "", "label": "", "value": "", "description": "", "raw": {}}
        assert body["metadata"] == {"ticket": 7}
        respond(world, created["id"], outcome="approved")
        body = world.client_for("key").get(f"/api/v1/requests/{created['id']}/result/").json()
        assert body["status"] == "responded" and body["outcome"] == "approved"
        assert body["metadata"] == {"ticket": 7}


class TestApprovalMode:
    def test_it_reads_approve_and_reject_words(self, world: World) -> None:
        created = world.create(mode="approval", emit_options=None)
        result = respond(world, created["id"], feedback="LGTM, ship it").json()
        assert result["outcome"] == "approved"
        assert result["response_type"] == "approval"
        assert result["metadata"]["approved"] is True and result["metadata"]["rejected"] is False
        assert result["choice"]["id"] == "approved" and result["choice"]["raw"] == {"approved": True}

        created = world.create(mode="approval", emit_options=None)
        result = respond(world, created["id"], outcome="reject", feedback="Wrong numbers").json()
        assert result["outcome"] == "rejected"
        assert result["metadata"]["rejected"] is True
        assert result["feedback"] == "Wrong numbers"

    def test_it_refuses_an_answer_without_a_decision(self, world: World) -> None:
        created = world.create(mode="approval", emit_options=None)
        response = respond(world, created["id"], feedback="No problem with the layout but")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_outcome"


class TestChoicesMode:
    ITEMS = [
        {"source": {"title": "Rust 2026"}, "url": "https://a.example/1", "summary": "A"},
        {"source": {"title": "Django 6"}, "url": "https://a.example/2", "summary": "B"},
    ]

    def test_it_resolves_paths_and_returns_the_choice_object(self, world: World) -> None:
        created = world.create(
            mode="choices",
            emit_options=None,
            options=self.ITEMS,
            label_path="source.title",
            value_path="url",
            description_path="summary",
        )
        assert created["options"][1] == {
            "id": "option_2",
            "label": "Django 6",
            "value": "https://a.example/2",
            "description": "B",
            "raw": self.ITEMS[1],
        }
        result = respond(world, created["id"], choice_id="option_2").json()
        assert result["response_type"] == "choice"
        assert result["choice"]["value"] == "https://a.example/2"
        assert result["choice"]["raw"]["source"]["title"] == "Django 6"

    def test_multiple_choices_and_bad_ids(self, world: World) -> None:
        created = world.create(
            mode="choices", emit_options=None, options=self.ITEMS, multiple=True, label_path="source.title"
        )
        bad = respond(world, created["id"], choice_id=["option_9"])
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_choice"
        result = respond(world, created["id"], choice_id=["option_1", "option_2"]).json()
        assert [c["id"] for c in result["choices"]] == ["option_1", "option_2"]

    def test_it_accepts_a_number_or_a_label(self, world: World) -> None:
        created = world.create(mode="choices", emit_options=None, options=self.ITEMS, label_path="source.title")
        assert respond(world, created["id"], choice_id="2").json()["choice"]["id"] == "option_2"
        created = world.create(mode="choices", emit_options=None, options=self.ITEMS, label_path="source.title")
        assert respond(world, created["id"], choice_id="rust 2026").json()["choice"]["id"] == "option_1"


class TestTextMode:
    def test_it_requires_text(self, world: World) -> None:
        created = world.create(mode="text", emit_options=None)
        empty = respond(world, created["id"])
        assert empty.status_code == 400 and empty.json()["code"] == "text_required"
        result = respond(world, created["id"], text="Use the blue logo").json()
        assert result["response_type"] == "text" and result["text"] == "Use the blue logo"


class TestEditable:
    def test_edited_output_comes_back_only_when_allowed(self, world: World) -> None:
        fixed = world.create(content="teh draft")
        refused = respond(world, fixed["id"], outcome="approved", edited_output="the draft")
        assert refused.status_code == 400 and refused.json()["code"] == "not_editable"
        editable = world.create(content="teh draft", editable=True)
        result = respond(world, editable["id"], outcome="approved", edited_output="the draft").json()
        assert result["edited_output"] == "the draft" and result["output"] == "teh draft"


class TestCancel:
    def test_it_cancels_once(self, world: World) -> None:
        created = world.create()
        client = world.client_for("key")
        response = client.post(f"/api/v1/requests/{created['id']}/cancel/", {"reason": "flow aborted"}, format="json")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        again = client.post(f"/api/v1/requests/{created['id']}/cancel/", {}, format="json")
        assert again.status_code == 409 and again.json()["code"] == "not_pending"
        late = respond(world, created["id"], outcome="approved")
        assert late.status_code == 409


class TestReassign:
    def test_a_manager_reassigns_and_it_is_audited(self, world: World) -> None:
        created = world.create()
        response = world.client_for("manager").post(
            f"/api/v1/requests/{created['id']}/reassign/",
            {"email": "Legal@Example.com", "note": "legal must see"},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["assigned_to_email"] == "legal@example.com"
        assert response.json()["assignment"]["step"] == "reassigned"
        event = AuditEvent.objects.get(event_type="request.reassigned", target_id=created["id"])
        assert event.data == {"from": "creator@example.com", "to": "legal@example.com", "note": "legal must see"}


class TestValidation:
    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"message": ""}, "message"),
            ({"emit_options": []}, "emit_options"),
            ({"emit_options": ["a", "A"]}, "emit_options"),
            ({"emit_options": ["ok", ""]}, "emit_options"),
            ({"default_outcome": "maybe"}, "default_outcome"),
            ({"state": ["not", "an", "object"]}, "state"),
            ({"mode": "choices", "emit_options": None, "options": []}, "options"),
            ({"assign_to": "not-an-email"}, "assign_to"),
            ({"timeout": -5}, "timeout"),
            ({"on_timeout": "explode"}, "on_timeout"),
            ({"surprise": 1}, "surprise"),
            ({"content": "x" * 500_001}, "content"),
        ],
    )
    def test_it_names_the_bad_field(self, world: World, payload: dict, field: str) -> None:
        body = {"message": "Please review", "emit_options": ["approved", "rejected"], **payload}
        body = {k: v for k, v in body.items() if v is not None}
        response = world.client_for("key").post("/api/v1/requests/", body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid"
        assert field in response.json()["errors"]
        assert HITLRequest.objects.count() == 0

    def test_the_deployment_default_outcome_is_checked_against_the_request(self, world: World) -> None:
        world.deployment.auto_response_enabled = True
        world.deployment.auto_response_timeout_minutes = 30
        world.deployment.auto_response_default_outcome = "approve"
        world.deployment.save()
        response = world.client_for("key").post(
            "/api/v1/requests/", {"message": "m", "emit_options": ["approved", "rejected"]}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_default_outcome"
        ok = world.create(emit_options=["approve", "deny"])
        assert ok["default_outcome"] == "approve" and ok["timeout"] == 1800 and ok["due_at"]
