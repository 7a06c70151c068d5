"""The review page and the magic-link page render a typed form (SPEC §14): a labelled control of the
right type per field, pre-filled, required marks, help text; a refused answer shows each field's
error next to it (aria-describedby) and records nothing; an accepted one types the strings."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from hitl import services
from hitl.lib.links import magic_link_url
from hitl.models import HITLRequest, Resolution
from tests.hitl.forms.support import form_payload, nothing_recorded
from tests.support.base import World

pytestmark = pytest.mark.django_db


def form_request(world: World, **extra: object) -> HITLRequest:
    return services.create_request(
        world.deployment, form_payload(assign_to=world.responder.email, **extra), actor="test"
    )


def signed_in(world: World) -> Client:
    client = Client()
    client.force_login(world.responder)
    return client


class TestFormPage:
    def test_it_renders_an_accessible_prefilled_form(self, world: World) -> None:
        req = form_request(world, content="Invoice **42**", editable=True)
        html = signed_in(world).get(f"/requests/{req.pk}/").content.decode()
        assert '<label for="ff-1-input">Vendor name <span class="req" aria-hidden="true">*</span>' in html
        assert re.search(r'<input type="text" name="f-vendor" id="ff-1-input" value="Acme" required', html)
        assert 'aria-describedby="ff-1-help"' in html and 'id="ff-1-help">As on the invoice.' in html
        assert '<select name="f-risk" id="ff-2-input" required' in html
        assert '<option value="low" selected>low</option>' in html  # the default
        assert re.search(
            r'type="number" name="f-amount"[^>]*value="100"[^>]*step="any"[^>]*min="1"[^>]*max="10000"', html
        )
        assert 'type="checkbox" name="f-approved" id="ff-4-input" value="true"' in html
        assert html.count('type="checkbox" name="f-regions"') == 3
        assert "<legend>Regions" in html
        assert 'type="email" name="f-contact"' in html
        assert 'name="edited_output"' in html  # editable content beside the form
        assert "Submit the form" in html

    def test_the_magic_link_page_renders_it_too(self, world: World) -> None:
        req = form_request(world)
        html = Client().get(magic_link_url(req)).content.decode()
        assert 'name="f-vendor"' in html and 'name="f-regions"' in html

    def test_a_refused_answer_shows_every_error_next_to_its_field(self, world: World) -> None:
        req = form_request(world)
        response = signed_in(world).post(
            f"/requests/{req.pk}/answer/",
            {"f-vendor": "A", "f-risk": "nope", "f-amount": "99999", "f-regions": ["eu", "mars"], "f-contact": "x"},
        )
        assert response.status_code == 400
        html = response.content.decode()
        for index in (1, 2, 3, 5, 6):
            assert (
                f'aria-describedby="ff-{index}-help ff-{index}-err"' in html
                or f'aria-describedby="ff-{index}-err"' in html
            )
            assert f'id="ff-{index}-err"' in html
        assert "Must be at most 10000" in html and "Not an email address" in html
        assert 'value="99999"' in html  # what was typed stays
        assert "5 field(s) need fixing; nothing was recorded." in html
        assert nothing_recorded(req.pk)

    def test_an_accepted_answer_is_typed_from_the_strings(self, world: World) -> None:
        req = form_request(world, content="doc", editable=True)
        response = signed_in(world).post(
            f"/requests/{req.pk}/answer/",
            {
                "f-vendor": "Globex",
                "f-risk": "medium",
                "f-amount": "12.5",
                "f-approved": "true",
                "f-regions": ["us", "eu"],
                "f-contact": "a@b.example",
                "feedback": "fine",
                "edited_output": "doc, edited",
            },
        )
        assert response.status_code == 302
        result = Resolution.objects.get(request_id=req.pk).result
        assert result["form"] == {
            "vendor": "Globex",
            "risk": "medium",
            "amount": 12.5,
            "approved": True,
            "regions": ["us", "eu"],
            "contact": "a@b.example",
        }
        assert result["edited_output"] == "doc, edited" and result["source"] == "dashboard"
        page = signed_in(world).get(f"/requests/{req.pk}/").content.decode()
        assert 'id="form-values"' in page and "us, eu" in page

    def test_an_unchecked_boolean_is_false_and_an_integer_is_an_int(self, world: World) -> None:
        schema = {
            "type": "object",
            "properties": {"n": {"type": "integer", "maximum": 5}, "ok": {"type": "boolean"}},
            "required": ["n"],
        }
        req = services.create_request(
            world.deployment,
            {"message": "x", "schema": schema, "assign_to": world.responder.email},
            actor="test",
        )
        signed_in(world).post(f"/requests/{req.pk}/answer/", {"f-n": "3"})
        assert Resolution.objects.get(request_id=req.pk).result["form"] == {"n": 3, "ok": False}

    def test_a_nul_character_is_refused_not_stored(self, world: World) -> None:
        req = form_request(world)
        response = signed_in(world).post(f"/requests/{req.pk}/answer/", {"f-vendor": "Ac\x00me", "f-amount": "3"})
        assert response.status_code == 400 and "Must not contain NUL characters." in response.content.decode()
        assert nothing_recorded(req.pk)
