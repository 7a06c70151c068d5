"""Typed forms through the API (SPEC §14): create validates the schema (every problem, a stable code),
respond and the callback URL take `data`, every invalid field is refused at once before anything is
recorded, and the result carries the typed values, edited_fields and content_sha256."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from hitl.models import HITLRequest, Resolution
from tests.hitl.forms.support import INITIAL, SCHEMA, form_payload, nothing_recorded
from tests.support.base import World

pytestmark = pytest.mark.django_db

GOOD = {"vendor": "Globex", "risk": "high", "amount": 2500.5, "approved": True, "regions": ["eu", "apac"]}


def create(world: World, **extra: Any) -> dict[str, Any]:
    response = world.client_for("key").post("/api/v1/requests/", form_payload(**extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def post_create(world: World, body: Any) -> Any:
    return world.client_for("key").post("/api/v1/requests/", body, format="json")


class TestFormCreate:
    def test_it_creates_a_form_request_with_its_schema_and_initial(self, world: World) -> None:
        created = create(world)
        assert created["mode"] == "form"
        assert created["schema"] == SCHEMA and created["initial"] == INITIAL
        assert created["result"]["response_type"] == "form"
        assert created["result"]["form"] is None and created["result"]["edited_fields"] == []

    def test_mode_defaults_to_form_when_a_schema_is_given(self, world: World) -> None:
        response = post_create(world, {"message": "x", "schema": SCHEMA})
        assert response.status_code == 201 and response.json()["mode"] == "form"

    def test_a_bad_schema_is_a_400_listing_every_problem(self, world: World) -> None:
        schema = {
            "type": "object",
            "properties": {
                "age": {"type": "integer", "minimum": 10, "maximum": 1},
                "nested": {"type": "object", "properties": {}},
                "colour": {"type": "string", "format": "colour"},
                "tags": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["missing"],
        }
        response = post_create(world, {"message": "x", "mode": "form", "schema": schema})
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid_schema" and body["detail"]
        problems = body["errors"]["schema"]
        for needle in ("minimum is greater", "properties.nested", "format", "properties.tags", "'missing'"):
            assert any(needle in p for p in problems), (needle, problems)
        assert len(problems) >= 5
        assert not HITLRequest.objects.exists()

    def test_a_schema_outside_the_metaschema_is_refused(self, world: World) -> None:
        response = post_create(world, {"message": "x", "schema": {"type": "object", "properties": {"a": {"type": 7}}}})
        assert response.status_code == 400 and response.json()["code"] == "invalid_schema"
        assert "2020-12" in " ".join(response.json()["errors"]["schema"])

    def test_form_mode_needs_a_schema_and_initial_must_fit_it(self, world: World) -> None:
        response = post_create(world, {"message": "x", "mode": "form"})
        assert response.status_code == 400 and "schema" in response.json()["errors"]
        response = post_create(world, form_payload(initial={"amount": 99999, "nope": 1}))
        assert response.status_code == 400
        initial_errors = " ".join(response.json()["errors"]["initial"])
        assert "amount" in initial_errors and "nope" in initial_errors

    def test_schema_is_refused_outside_form_mode(self, world: World) -> None:
        response = post_create(world, {"message": "x", "emit_options": ["a"], "schema": SCHEMA})
        assert response.status_code == 400 and "schema" in response.json()["errors"]


class TestHostileSchemas:
    @pytest.mark.parametrize(
        "pattern",
        ["(a+)+$", "(a|a)*b", "(x*)*y", r"(\d+)*\1", "(?=a)a", "a" * 500, "(unclosed"],
        ids=["nested", "alternation", "star-star", "backref", "lookahead", "too-long", "invalid"],
    )
    def test_a_dangerous_or_broken_pattern_is_a_clear_400(self, world: World, pattern: str) -> None:
        schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern, "maxLength": 50}}}
        response = post_create(world, {"message": "x", "schema": schema})
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid_schema"
        assert any("pattern" in p for p in response.json()["errors"]["schema"])

    def test_a_pattern_needs_a_bounded_length(self, world: World) -> None:
        schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^[a-z]+$"}}}
        response = post_create(world, {"message": "x", "schema": schema})
        assert response.status_code == 400 and "maxLength" in " ".join(response.json()["errors"]["schema"])

    def test_a_huge_schema_is_a_400(self, world: World) -> None:
        properties = {f"f{i}": {"type": "string", "description": "x" * 1000} for i in range(120)}
        response = post_create(world, {"message": "x", "schema": {"type": "object", "properties": properties}})
        assert response.status_code == 400 and response.json()["code"] == "invalid_schema"

    def test_deep_nesting_is_a_400(self, world: World) -> None:
        deep: dict[str, Any] = {"type": "string"}
        for _ in range(15):  # 30 levels: within the JSON parser's limit, beyond the schema's
            deep = {"type": "object", "properties": {"x": deep}}
        response = post_create(world, {"message": "x", "schema": deep})
        assert response.status_code == 400 and response.json()["code"] == "invalid_schema"

    def test_json_deeper_than_the_parser_allows_is_a_400(self, world: World) -> None:
        body = '{"message": "x", "schema": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"
        response = world.client_for("key").post("/api/v1/requests/", body, content_type="application/json")
        assert response.status_code == 400

    def test_invalid_unicode_in_a_schema_is_a_400(self, world: World) -> None:
        body = '{"message": "x", "schema": {"type": "object", "properties": {"\\ud800": {"type": "string"}}}}'
        response = world.client_for("key").post("/api/v1/requests/", body, content_type="application/json")
        assert response.status_code == 400

    def test_hostile_answers_are_400s(self, world: World) -> None:
        created = create(world)
        client = world.client_for("key")
        for data in ({"vendor": "x" * 200_000}, {"amount": "1e999"}, {"regions": "eu"}, {"amount": True}):
            response = client.post(f"/api/v1/requests/{created['id']}/respond/", {"data": data}, format="json")
            assert response.status_code == 400, (data, response.content)
        assert nothing_recorded(created["id"])


class TestFormRespond:
    def test_it_answers_with_typed_values(self, world: World) -> None:
        created = create(world, content="The **invoice**")
        response = world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"data": GOOD, "feedback": "ok"}, format="json"
        )
        assert response.status_code == 200, response.content
        result = response.json()
        assert result["response_type"] == "form"
        assert result["form"] == GOOD
        assert result["feedback"] == "ok"
        assert result["edited_fields"] == ["vendor", "risk", "amount", "approved", "regions"]
        assert result["content_sha256"] == hashlib.sha256(b"The **invoice**").hexdigest()
        event = AuditEvent.objects.get(event_type=EventType.RESPONSE_SUBMITTED, target_id=created["id"])
        assert event.data["form"] == GOOD and event.data["content_sha256"] == result["content_sha256"]

    def test_defaults_fill_missing_optional_fields_and_unchanged_values_are_not_edited(self, world: World) -> None:
        created = create(world)
        data = {"vendor": "Acme", "amount": 100, "risk": "low"}
        result = (
            world.client_for("key")
            .post(f"/api/v1/requests/{created['id']}/respond/", {"data": data}, format="json")
            .json()
        )
        assert result["form"] == {"vendor": "Acme", "risk": "low", "amount": 100, "approved": False}
        assert result["edited_fields"] == ["risk", "approved"]

    def test_every_invalid_field_is_refused_at_once_and_nothing_is_recorded(self, world: World) -> None:
        created = create(world)
        bad = {"vendor": "A", "risk": "extreme", "amount": 0, "approved": "maybe", "regions": ["mars"], "x": 1}
        response = world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"data": bad}, format="json"
        )
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid_form"
        assert set(body["errors"]) == {"vendor", "risk", "amount", "approved", "regions", "x"}
        assert "Expected" in body["errors"]["amount"][0]
        assert nothing_recorded(created["id"])
        assert AuditEvent.objects.filter(event_type=EventType.RESPONSE_REFUSED, target_id=created["id"]).exists()
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"

    def test_missing_required_fields_are_named(self, world: World) -> None:
        created = create(world, initial={})
        response = world.client_for("key").post(f"/api/v1/requests/{created['id']}/respond/", {}, format="json")
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"vendor", "amount"}  # risk has a default
        assert nothing_recorded(created["id"])

    def test_the_callback_url_takes_data(self, world: World) -> None:
        created = create(world)
        path = urlparse(created["callback_url"]).path
        response = APIClient().post(path, {"data": GOOD}, format="json")
        assert response.status_code == 200, response.content
        assert Resolution.objects.get(request_id=created["id"]).result["form"] == GOOD
        bad = create(world)
        response = APIClient().post(urlparse(bad["callback_url"]).path, {"data": {"amount": -1}}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "invalid_form"
        assert nothing_recorded(bad["id"])

    def test_edited_content_is_what_the_hash_covers(self, world: World) -> None:
        created = create(world, content="draft", editable=True)
        result = (
            world.client_for("key")
            .post(f"/api/v1/requests/{created['id']}/respond/", {"data": GOOD, "edited_output": "final"}, format="json")
            .json()
        )
        assert result["content_sha256"] == hashlib.sha256(b"final").hexdigest()

    def test_every_mode_carries_content_sha256(self, world: World) -> None:
        created = world.create(content="hello")
        result = (
            world.client_for("key")
            .post(f"/api/v1/requests/{created['id']}/respond/", {"outcome": "approved"}, format="json")
            .json()
        )
        assert result["content_sha256"] == hashlib.sha256(b"hello").hexdigest()


class TestFormWithApprovers:
    def test_each_decision_carries_its_form_values(self, world: World) -> None:
        created = create(world, approvers=["a@example.com", "b@example.com"], policy="all")
        client = world.client_for("key")
        url = f"/api/v1/requests/{created['id']}/respond/"
        first = client.post(url, {"data": GOOD, "on_behalf_of": "a@example.com"}, format="json")
        assert first.status_code == 200, first.content
        second_values = {**GOOD, "amount": 7}
        bad = client.post(url, {"data": {"amount": 0}, "on_behalf_of": "b@example.com"}, format="json")
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_form"
        second = client.post(url, {"data": second_values, "on_behalf_of": "b@example.com"}, format="json")
        assert second.status_code == 200, second.content
        result = second.json()
        forms = {d["responder"]: d["form"] for d in result["decisions"]}
        assert forms == {"a@example.com": GOOD, "b@example.com": second_values}
        assert all(len(d["content_sha256"]) == 64 for d in result["decisions"])
        assert result["form"] in (GOOD, second_values)


class TestOnlyFormAnswers:
    def test_an_answer_without_form_values_is_refused(self, world: World) -> None:
        from hitl import services
        from hitl.lib.errors import InvalidAnswer

        created = create(world)
        for answer in (services.Answer(text="yes"), services.Answer(outcome="approved"), services.Answer()):
            with pytest.raises(InvalidAnswer) as refused:
                services.respond_to_request(created["id"], answer, responder="slack:ann", source="slack")
            assert refused.value.code == "form_required"
        assert nothing_recorded(created["id"])


class TestHugeOffset:
    def test_an_offset_beyond_64_bits_is_an_empty_page(self, world: World) -> None:
        response = world.client_for("key").get("/api/v1/requests/?offset=89847871652769221648864226970697728")
        assert response.status_code == 200 and response.json()["results"] == []
