"""The new assignee's notification says who handed the request over, how, and their note (issue 13)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from tests.support.base import World

pytestmark = pytest.mark.django_db

RESPONDER = "responder@example.com"


class TestHandoverNote:
    def test_a_reassignment_note_reaches_the_new_assignee(self, world: World) -> None:
        created = world.create(assign_to="alice@example.com")
        mail.outbox.clear()
        response = world.client_for("manager").post(
            f"/api/v1/requests/{created['id']}/reassign/",
            {"email": "bob@example.com", "note": "Alice is out; the figures are in tab 2 & 3."},
            format="json",
        )
        assert response.status_code == 200, response.content
        [sent] = mail.outbox
        assert sent.to == ["bob@example.com"]
        assert "reassigned by manager@example.com, from alice@example.com" in sent.body
        assert "Note: Alice is out; the figures are in tab 2 & 3." in sent.body
        html = sent.alternatives[0][0]
        assert "Note: Alice is out; the figures are in tab 2 &amp; 3." in html

    def test_a_delegation_note_reaches_the_delegate(self, world: World) -> None:
        created = world.create(assign_to=RESPONDER)
        mail.outbox.clear()
        client = Client()
        client.force_login(world.responder)
        client.post(
            f"/requests/{created['id']}/delegate/", {"delegate-email": "bob@example.com", "delegate-note": "on leave"}
        )
        [sent] = mail.outbox
        assert sent.to == ["bob@example.com"]
        assert f"delegated by {RESPONDER})" in sent.body and "Note: on leave" in sent.body
        assert "Note: on leave" in sent.alternatives[0][0]
