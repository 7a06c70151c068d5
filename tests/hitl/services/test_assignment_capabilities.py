"""An assignment change ends the old assignee's capabilities when it commits (SPEC §10): magic links
and reply tokens issued before a reassignment no longer answer — also when the request comes back to
the same person, and in the race where the reassignment commits while the old answer is in flight. The
callback URL is the integrating app's and survives."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urlparse

import pytest
from django.core import mail
from django.db import connection, connections, transaction
from django.test import Client

from audit.models import AuditEvent
from hitl import services
from hitl.lib import signing
from hitl.lib.links import MAGIC_PURPOSE
from hitl.models import HITLRequest
from tests.support import esp_payloads as esp
from tests.support.base import World

ASSIGNEE = "responder@example.com"


def _last_mail_to(to: str):
    return [m for m in mail.outbox if to in m.to][-1]


def _magic_path(to: str) -> str:
    match = re.search(r"(https?://\S+/r/\S+?/)(?:\s|$)", _last_mail_to(to).body)
    assert match, _last_mail_to(to).body
    return urlparse(match[1]).path


def _reply_to(to: str) -> str:
    return [m for m in mail.outbox if to in m.to and m.reply_to][-1].reply_to[0]


def _reassign(world: World, request_id: str, email: str) -> None:
    response = world.client_for("key").post(f"/api/v1/requests/{request_id}/reassign/", {"email": email}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.django_db
class TestReassignmentEndsOldCapabilities:
    def test_it_refuses_an_old_magic_link_after_a_reassignment(self, world: World) -> None:
        request_id = world.create(assign_to=ASSIGNEE)["id"]
        old_link = _magic_path(ASSIGNEE)
        _reassign(world, request_id, "other@example.com")
        refused = Client().post(old_link, {"outcome": "approved"})
        assert refused.status_code == 403 and "no longer yours to answer" in refused.content.decode()
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_it_refuses_an_old_magic_link_when_reassigned_back_to_the_same_person(self, world: World) -> None:
        request_id = world.create(assign_to=ASSIGNEE)["id"]
        old_link = _magic_path(ASSIGNEE)
        _reassign(world, request_id, "other@example.com")
        _reassign(world, request_id, ASSIGNEE)
        new_link = _magic_path(ASSIGNEE)
        assert new_link != old_link
        refused = Client().post(old_link, {"outcome": "approved"})
        assert refused.status_code == 403 and "no longer yours to answer" in refused.content.decode()
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        assert Client().post(new_link, {"outcome": "approved"}).status_code == 302
        assert HITLRequest.objects.get(pk=request_id).status == "responded"

    def test_it_ends_a_magic_link_session_marker_at_the_reassignment(self, world: World) -> None:
        request_id = world.create(assign_to=ASSIGNEE, emit_options=["approved", "rejected"])["id"]
        link = _magic_path(ASSIGNEE)
        browser = Client()
        # A POST that does not answer (invalid outcome) still leaves the marker.
        browser.post(link, {"outcome": "nonsense"})
        _reassign(world, request_id, "other@example.com")
        _reassign(world, request_id, ASSIGNEE)
        response = browser.post(f"/requests/{request_id}/delegate/", {"delegate-email": "z@example.com"})
        assert response.status_code in (302, 404)
        assert HITLRequest.objects.get(pk=request_id).assigned_to_email == ASSIGNEE

    @pytest.mark.parametrize("esp_name", ["postmark"])
    def test_it_refuses_an_old_reply_token_when_reassigned_back(self, world: World, esp_name: str) -> None:
        request_id = world.create(assign_to=ASSIGNEE)["id"]
        old_reply_to = _reply_to(ASSIGNEE)
        _reassign(world, request_id, "other@example.com")
        _reassign(world, request_id, ASSIGNEE)
        assert _reply_to(ASSIGNEE) != old_reply_to
        assert len(old_reply_to.split("@")[0]) <= 64
        esp.reply(Client(), esp_name, sender=ASSIGNEE, to=old_reply_to, body="approved")
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        esp.reply(Client(), esp_name, sender=ASSIGNEE, to=_reply_to(ASSIGNEE), body="approved")
        assert HITLRequest.objects.get(pk=request_id).status == "responded"

    def test_it_keeps_links_of_never_reassigned_requests_valid(self, world: World) -> None:
        request_id = world.create(assign_to=ASSIGNEE)["id"]
        # A link as built before assignment versions existed: no version in the signed parts.
        token = signing.sign(MAGIC_PURPOSE, request_id, ASSIGNEE, ttl=3600)
        from hitl.views.link_session import encode_email

        path = f"/r/{request_id}/{encode_email(ASSIGNEE)}/{token}/"
        assert Client().post(path, {"outcome": "approved"}).status_code == 302
        assert HITLRequest.objects.get(pk=request_id).status == "responded"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and READ COMMITTED: PostgreSQL")
class TestReassignmentRace:
    def test_it_refuses_an_answer_in_flight_when_the_reassignment_commits_first(self, world: World) -> None:
        request_id = world.create(assign_to=ASSIGNEE)["id"]
        link = _magic_path(ASSIGNEE)
        reassigned, release = threading.Event(), threading.Event()
        answers: list[int] = []

        def manager() -> None:
            try:
                with transaction.atomic():  # the reassignment holds the row until it commits
                    services.reassign_request(request_id, email="other@example.com", actor="manager@example.com")
                    reassigned.set()
                    release.wait(10)
            finally:
                connections.close_all()

        def old_assignee() -> None:
            try:
                answers.append(Client().post(link, {"outcome": "approved"}).status_code)
            finally:
                connections.close_all()

        first = threading.Thread(target=manager)
        first.start()
        assert reassigned.wait(10)
        second = threading.Thread(target=old_assignee)
        second.start()
        time.sleep(1.0)  # the answer has read version 0 and waits on the row lock in its UPDATE
        release.set()
        first.join(10)
        second.join(10)
        request = HITLRequest.objects.get(pk=request_id)
        assert request.status == "pending" and request.assigned_to_email == "other@example.com"
        assert answers and answers[0] in (302, 403)
        assert AuditEvent.objects.filter(
            target_id=request_id, event_type="response.refused", data__reason="reassigned"
        ).exists()
