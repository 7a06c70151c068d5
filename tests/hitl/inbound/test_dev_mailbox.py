"""The dev mailbox: read what was sent and answer it as the recipient (DEBUG only)."""

from __future__ import annotations

import pytest
from django.test import Client

from hitl.models import HITLRequest
from tests.support.base import World

pytestmark = pytest.mark.django_db


class TestDevMailbox:
    def test_it_shows_sent_mail_and_answers_through_inbound_processing(self, world: World, settings, tmp_path) -> None:
        settings.DEBUG = True
        settings.EMAIL_BACKEND = "hitl.lib.dev_mailbox.DevMailboxBackend"
        settings.EMAIL_FILE_PATH = str(tmp_path)
        created = world.create(assign_to="reviewer@example.com", message="Ship the Q1 copy?")
        listing = Client().get("/dev/mailbox/")
        assert listing.status_code == 200 and b"Ship the Q1 copy?" in listing.content
        name = sorted(p.name for p in tmp_path.glob("*.eml"))[0]
        page = Client().get(f"/dev/mailbox/{name}/")
        assert page.status_code == 200 and b"reply+" in page.content
        response = Client().post(f"/dev/mailbox/{name}/", {"body": "Approved! Nice work."})
        assert response.status_code == 302
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["outcome"], result["feedback"], result["source"]) == ("approved", "Nice work.", "email")
        assert result["responder"] == "reviewer@example.com"
        assert len(list(tmp_path.glob("*.eml"))) == 2  # the notification and the confirmation

    def test_it_does_not_exist_without_debug(self, settings, tmp_path) -> None:
        settings.DEBUG = False
        assert Client().get("/dev/mailbox/").status_code == 404
        settings.DEBUG = True
        settings.EMAIL_FILE_PATH = str(tmp_path)
        assert Client().get("/dev/mailbox/../../etc/passwd/").status_code == 404
