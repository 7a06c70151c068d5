"""A typed form (SPEC §14) in Chromium, on a phone-sized screen, through the assignee's magic link:
labelled controls of the right types, pre-filled; server-side errors next to each field (tied with
aria-describedby) and nothing recorded; then, by keyboard, an answer with typed values."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from hitl.models import HITLRequest, Resolution, Status
from tests.browser.conftest import PHONE, Pages, screenshot
from tests.hitl.forms.support import form_payload, nothing_recorded
from tests.support.base import build_world

pytestmark = pytest.mark.django_db(transaction=True)

REVIEWER = "reviewer@partner.example"


class TestFormInChromium:
    def test_a_form_is_answered_on_a_phone(self, pages: Pages, site: str) -> None:
        world = build_world()
        mail.outbox.clear()
        created = world.create(
            **{
                **form_payload(assign_to=REVIEWER, content="Invoice **#42** from Acme", editable=True),
                "emit_options": None,
            }
        )
        match = re.search(r"(https?://\S+/r/\S+?/)(?:\s|$)", mail.outbox[-1].body)
        assert match, mail.outbox[-1].body
        page = pages.new(PHONE)
        page.goto(match.group(1))

        vendor = page.get_by_label("Vendor name")
        assert vendor.get_attribute("type") == "text" and vendor.input_value() == "Acme"
        assert vendor.get_attribute("required") is not None
        assert page.locator("#" + vendor.get_attribute("aria-describedby")).inner_text() == "As on the invoice."
        amount = page.get_by_label("Amount")
        assert (amount.get_attribute("type"), amount.get_attribute("min"), amount.get_attribute("max")) == (
            "number",
            "1",
            "10000",
        )
        assert amount.input_value() == "100"
        assert page.get_by_label("Risk").evaluate("e => e.tagName") == "SELECT"
        assert page.get_by_label("Risk").input_value() == "low"
        assert page.get_by_label("Approved").get_attribute("type") == "checkbox"
        regions = page.get_by_role("group", name="Regions")
        assert regions.get_by_role("checkbox").count() == 3
        assert page.get_by_label("Contact").get_attribute("type") == "email"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
        screenshot(page, "form-phone")

        # Past the browser's own checks, the server refuses every invalid field at once.
        page.eval_on_selector("#answer form", "f => { f.noValidate = true; }")
        vendor.fill("A")
        amount.fill("99999")
        page.get_by_label("Contact").fill("not an email")
        page.get_by_role("button", name="Submit the form").click()
        page.wait_for_load_state()
        for label, message in (
            ("Vendor name", "At least 2 characters"),
            ("Amount", "Must be at most 10000"),
            ("Contact", "Not an email address"),
        ):
            control = page.get_by_label(label)
            assert control.get_attribute("aria-invalid") == "true"
            described = control.get_attribute("aria-describedby") or ""
            texts = " ".join(page.locator(f"#{part}").inner_text() for part in described.split())
            assert message in texts, (label, texts)
        assert page.get_by_label("Amount").input_value() == "99999"  # what was typed stays
        assert nothing_recorded(created["id"])
        screenshot(page, "form-phone-errors")

        # By keyboard: type, tab along, tick with the space bar, submit with Enter.
        page.get_by_label("Vendor name").fill("")
        page.get_by_label("Vendor name").focus()
        page.keyboard.type("Globex")
        page.keyboard.press("Tab")  # to Risk
        page.keyboard.press("ArrowDown")  # medium
        page.keyboard.press("ArrowDown")  # high
        page.get_by_label("Amount").fill("2500.5")
        page.get_by_label("Approved").focus()
        page.keyboard.press("Space")
        regions.get_by_label("eu").focus()
        page.keyboard.press("Space")
        regions.get_by_label("apac").focus()
        page.keyboard.press("Space")
        page.get_by_label("Contact").fill("ops@globex.example")
        page.get_by_label("Contact").press("Enter")
        page.wait_for_url(f"{site}/requests/{created['id']}/")

        assert HITLRequest.objects.get(pk=created["id"]).status == Status.RESPONDED
        result = Resolution.objects.get(request_id=created["id"]).result
        assert result["form"] == {
            "vendor": "Globex",
            "risk": "high",
            "amount": 2500.5,
            "approved": True,
            "regions": ["eu", "apac"],
            "contact": "ops@globex.example",
        }
        assert result["source"] == "dashboard" and result["responder"] == REVIEWER
        assert "Globex" in page.locator("#form-values").inner_text()
