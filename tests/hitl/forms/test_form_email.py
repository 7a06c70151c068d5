"""Typed forms by email (SPEC §14): the notification lists the fields and how to answer; a reply of
`field: value` lines (labels or names, any case) posted as a real ESP inbound payload to the real
Anymail URL is validated, then accepted (the confirmation echoes the values) or answered with an
error email naming every invalid field, with nothing recorded."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from hitl.models import HITLRequest, InboundEmail, Resolution
from tests.hitl.forms.support import form_payload, nothing_recorded
from tests.support import esp_payloads as esp
from tests.support.base import World

pytestmark = pytest.mark.django_db

REVIEWER = "reviewer@example.com"


def new_form_request(world: World, **extra: object) -> tuple[dict, str]:
    mail.outbox.clear()
    created = world.create(**{**form_payload(assign_to=REVIEWER), "emit_options": None, **extra})
    assert len(mail.outbox) == 1
    notification = mail.outbox[0]
    reply_to = notification.reply_to[0]
    mail.outbox.clear()
    return {"created": created, "notification": notification}, reply_to


class TestFormNotification:
    def test_it_lists_every_field_and_how_to_answer(self, world: World) -> None:
        made, _ = new_form_request(world)
        body = made["notification"].body
        assert 'one line per field, "field: value"' in body
        for line in (
            "Vendor name: <text, at least 2 characters, at most 80 characters> (required)",
            "Risk: <one of low, medium, high> (required)",
            "Amount: <a number, at least 1, at most 10000> (required)",
            "Approved: <yes or no>",
            "Regions: <one or more of eu, us, apac (comma-separated)>",
            "Contact: <an email address>",
        ):
            assert line in body, line
        assert "Vendor name: Acme" in body  # the pre-filled values
        assert "/r/" in body or "http" in body  # the form link
        html = made["notification"].alternatives[0][0]
        assert "Open the form" in html and "Vendor name" in html


class TestFormReply:
    @pytest.mark.parametrize("provider", ["postmark", "mailgun", "sendgrid"])
    def test_a_reply_of_field_lines_answers_with_typed_values(self, world: World, provider: str) -> None:
        made, reply_to = new_form_request(world)
        body = (
            "vendor name: Globex Corp\nRISK: High\namount: 2500.5\napproved: yes\nregions: EU, apac\n"
            "Thanks, looks fine.\n\n" + esp.QUOTED_ORIGINAL
        )
        response = esp.reply(Client(), provider, sender=REVIEWER, to=reply_to, body=body)
        assert response.status_code == 200, response.content
        result = Resolution.objects.get(request_id=made["created"]["id"]).result
        assert result["form"] == {
            "vendor": "Globex Corp",
            "risk": "high",
            "amount": 2500.5,
            "approved": True,
            "regions": ["eu", "apac"],
        }
        assert result["feedback"] == "Thanks, looks fine."
        assert result["source"] == "email" and result["responder"] == REVIEWER
        assert result["edited_fields"] == ["vendor", "risk", "amount", "approved", "regions"]
        (confirmation,) = mail.outbox
        assert "Your answers:" in confirmation.body
        for line in ("Vendor name: Globex Corp", "Risk: high", "Amount: 2500.5", "Approved: yes", "Regions: eu, apac"):
            assert line in confirmation.body, line

    def test_fields_left_out_keep_their_prefilled_values(self, world: World) -> None:
        made, reply_to = new_form_request(world)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="risk: medium")
        result = Resolution.objects.get(request_id=made["created"]["id"]).result
        assert result["form"] == {"vendor": "Acme", "risk": "medium", "amount": 100, "approved": False}
        assert result["edited_fields"] == ["risk", "approved"]

    def test_an_invalid_reply_names_every_field_and_records_nothing(self, world: World) -> None:
        made, reply_to = new_form_request(world)
        body = "vendor: X\nrisk: extreme\namount: lots\napproved: perhaps\nregions: mars\ncontact: not-an-email"
        response = esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body=body)
        assert response.status_code == 200
        request_id = made["created"]["id"]
        assert nothing_recorded(request_id)
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        assert InboundEmail.objects.get().reason == "invalid_form"
        (error,) = mail.outbox
        assert "could not be recorded" in error.body
        assert "6 field(s)" in error.body and "What to fix:" in error.body
        for needle in (
            "Vendor name: At least 2 characters",
            "Risk: 'extreme' is not an option. Expected one of low, medium, high.",
            "Amount: 'lots' is not a number.",
            "Approved: 'perhaps' is not yes or no.",
            "Regions: 'mars' is not an option.",
            "Contact: Not an email address",
        ):
            assert needle in error.body, (needle, error.body)
        assert "field: value" in error.body

        # Fixed, the next reply is accepted.
        mail.outbox.clear()
        fixed = "vendor: Xeno\nrisk: low\namount: 5\napproved: no\nregions: us\ncontact: ops@xeno.example"
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body=fixed)
        result = Resolution.objects.get(request_id=request_id).result
        assert result["form"]["contact"] == "ops@xeno.example" and result["form"]["approved"] is False
