"""Several approvers by email (SPEC §13), through the real Anymail inbound URLs with real ESP payloads:
each approver gets their own notification, reply token and magic link; a reply decides as that
approver; reminders go to those who have not decided; replacing one approver ends only their token."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEvent, EventType
from hitl import services
from hitl.models import Approver, Decision, HITLRequest, InboundEmail
from tests.support import esp_payloads as esp
from tests.support.base import World

pytestmark = pytest.mark.django_db

POOL = ["ann@example.com", "bob@example.com", "cid@example.com"]


def pooled(world: World, **payload: object) -> tuple[dict, dict[str, str]]:
    """Create a pooled request; return it and each approver's Reply-To."""
    mail.outbox.clear()
    created = world.create(approvers=POOL, **payload)
    sent = {message.to[0]: message for message in mail.outbox}
    assert sorted(sent) == POOL, [m.to for m in mail.outbox]
    reply_to = {email: message.reply_to[0] for email, message in sent.items()}
    assert len(set(reply_to.values())) == 3  # one token each
    links = {email: message.body.split("Or open the review page: ")[1].split()[0] for email, message in sent.items()}
    assert len(set(links.values())) == 3  # one magic link each
    assert "You are one of 3 approvers" in sent[POOL[0]].body
    mail.outbox.clear()
    return created, reply_to


class TestPoolByEmail:
    @pytest.mark.parametrize("esp_name", ["postmark", "mailgun", "sendgrid"])
    def test_a_quorum_of_two_of_three_resolves_once_by_replies(self, world: World, esp_name: str) -> None:
        created, reply_to = pooled(world, policy="quorum", required=2)
        client = Client()
        first = esp.reply(
            client, esp_name, sender=POOL[0], to=reply_to[POOL[0]], body="Approved\n\n" + esp.QUOTED_ORIGINAL
        )
        assert first.status_code == 200
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        assert Decision.objects.get(approver=POOL[0]).source == "email"
        esp.reply(client, esp_name, sender=POOL[2], to=reply_to[POOL[2]], body="approved. ship it")
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.status == "responded"
        result = request.resolution.result
        assert (result["outcome"], result["responder"], result["feedback"]) == ("approved", POOL[2], "ship it")
        assert [d["responder"] for d in result["decisions"]] == [POOL[0], POOL[2]]
        late = esp.reply(client, esp_name, sender=POOL[1], to=reply_to[POOL[1]], body="rejected")
        assert late.status_code == 200
        assert InboundEmail.objects.filter(outcome="refused", reason="not_pending").count() == 1
        assert Decision.objects.filter(request_id=created["id"]).count() == 2

    def test_a_token_answers_only_as_its_approver(self, world: World) -> None:
        created, reply_to = pooled(world, policy="all")
        # Bob forwards Ann's notification and replies to it: the token is Ann's, not his.
        esp.reply(Client(), "postmark", sender=POOL[1], to=reply_to[POOL[0]], body="approved")
        assert not Decision.objects.exists()
        assert InboundEmail.objects.get().outcome == "refused"
        # A second reply of Ann's is refused: already decided.
        esp.reply(Client(), "postmark", sender=POOL[0], to=reply_to[POOL[0]], body="approved")
        esp.reply(Client(), "postmark", sender=POOL[0], to=reply_to[POOL[0]], body="rejected")
        assert InboundEmail.objects.filter(reason="already_decided").count() == 1
        assert any("already decided" in m.body for m in mail.outbox)
        assert Decision.objects.get().outcome == "approved"
        refused = AuditEvent.objects.filter(event_type=EventType.RESPONSE_REFUSED, target_id=created["id"])
        assert "already_decided" in [e.data["reason"] for e in refused]

    def test_replacing_one_approver_ends_only_their_token(self, world: World) -> None:
        created, reply_to = pooled(world, policy="all")
        services.reassign_request(created["id"], email="dan@example.com", replace=POOL[1], actor="manager@example.com")
        assert [m.to for m in mail.outbox] == [["dan@example.com"]]  # only the new approver is mailed
        dan_reply_to = mail.outbox[0].reply_to[0]
        mail.outbox.clear()
        esp.reply(Client(), "postmark", sender=POOL[1], to=reply_to[POOL[1]], body="approved")
        assert not Decision.objects.filter(approver=POOL[1]).exists()
        esp.reply(Client(), "postmark", sender=POOL[0], to=reply_to[POOL[0]], body="approved")
        esp.reply(Client(), "postmark", sender="dan@example.com", to=dan_reply_to, body="approved")
        esp.reply(Client(), "postmark", sender=POOL[2], to=reply_to[POOL[2]], body="approved")
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.status == "responded"
        assert sorted(d["responder"] for d in request.resolution.result["decisions"]) == sorted(
            [POOL[0], POOL[2], "dan@example.com"]
        )
        assert Approver.objects.get(email=POOL[1]).replaced_by == "dan@example.com"

    def test_reminders_go_to_those_who_have_not_decided(self, world: World) -> None:
        created, reply_to = pooled(world, policy="all")
        esp.reply(Client(), "postmark", sender=POOL[0], to=reply_to[POOL[0]], body="approved")
        HITLRequest.objects.filter(pk=created["id"]).update(reminder_due_at="2000-01-01T00:00:00Z")
        mail.outbox.clear()
        assert services.remind_assignee(created["id"])
        assert sorted(m.to[0] for m in mail.outbox) == POOL[1:]
        assert all("Reminder" in m.body for m in mail.outbox)

    def test_a_bounce_at_send_is_recorded_on_the_seat_and_the_others_still_go(self, world: World, settings) -> None:
        settings.EMAIL_BACKEND = "tests.support.failing_backend.FailingBackend"
        created = world.create(approvers=POOL, policy="quorum", required=2)
        seats = Approver.objects.filter(request_id=created["id"])
        assert all("SMTP down" in seat.notification_error for seat in seats)
        shown = world.client_for("key").get(f"/api/v1/requests/{created['id']}/").json()
        assert "SMTP down" in shown["pool"][0]["notification_error"]


def expired_link(request: HITLRequest, email: str) -> str:
    """An approver's magic link, minted two minutes ago with a one-minute lifetime."""
    import base64
    import time

    from hitl.lib import signing
    from hitl.lib.links import MAGIC_PURPOSE, magic_parts

    seat = Approver.objects.get(request=request, email=email, active=True)
    token = signing.sign(MAGIC_PURPOSE, *magic_parts(request.pk, email, seat.version), ttl=60, since=time.time() - 120)
    encoded = base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")
    return f"/r/{request.pk}/{encoded}/{token}/"


class TestFreshNotificationsGoToTheAsker:
    def test_an_expired_link_sends_a_fresh_one_to_that_approver_only(self, world: World) -> None:
        created, _ = pooled(world, policy="all")
        request = HITLRequest.objects.get(pk=created["id"])
        path = expired_link(request, POOL[1])
        page = Client().get(path)
        assert page.status_code == 410 and "Send me a fresh link" in page.content.decode()
        response = Client().post(f"{path}fresh/", follow=True)
        assert response.redirect_chain == [("/r/done/", 302)]
        assert "We sent a fresh link to b••@example.com" in response.content.decode()
        assert [m.to for m in mail.outbox] == [[POOL[1]]]
        assert f"/r/{request.pk}/" in mail.outbox[0].body
        assert not Approver.objects.filter(request=request, resend_requested_at__isnull=False).exists()
        # Each approver has their own allowance: bob's three an hour do not use up ann's.
        for _ in range(3):
            Client().post(f"{path}fresh/")
        assert Client().post(f"{expired_link(request, POOL[0])}fresh/").status_code == 302
        assert [m.to[0] for m in mail.outbox].count(POOL[0]) == 1

    def test_a_fresh_link_for_a_replaced_approver_is_refused(self, world: World) -> None:
        created, _ = pooled(world, policy="all")
        request = HITLRequest.objects.get(pk=created["id"])
        path = expired_link(request, POOL[1])
        services.reassign_request(created["id"], email="dan@example.com", replace=POOL[1], actor="manager@example.com")
        mail.outbox.clear()
        assert Client().post(f"{path}fresh/").status_code == 403
        assert mail.outbox == []

    def test_an_expired_reply_token_resends_to_that_approver_only(self, world: World, settings) -> None:
        from hitl.lib.reply_tokens import make_token, token_state

        created, _ = pooled(world, policy="all")
        request = HITLRequest.objects.get(pk=created["id"])
        seat = Approver.objects.get(request=request, email=POOL[2])
        token = make_token(request.pk, POOL[2], state=token_state("pending", seat.version), ttl=-60)
        to = f"reply+{token}@{settings.HITL_INBOUND_DOMAIN}"
        for _ in range(2):
            esp.reply(Client(), "postmark", sender=POOL[2], to=to, body="approved")
        fresh = [m for m in mail.outbox if m.subject.startswith("[Review]")]
        assert [m.to for m in fresh] == [[POOL[2]]]
        assert InboundEmail.objects.filter(reason="expired_token").count() == 2
        assert not Decision.objects.exists()

    def test_staff_resend_goes_to_every_approver_who_has_not_decided(self, world: World) -> None:
        created, reply_to = pooled(world, policy="all")
        esp.reply(Client(), "postmark", sender=POOL[0], to=reply_to[POOL[0]], body="approved")
        mail.outbox.clear()
        services.resend_notification(created["id"], actor="manager", source="dashboard")
        assert sorted(m.to[0] for m in mail.outbox) == [POOL[1], POOL[2]]
        event = AuditEvent.objects.filter(event_type=EventType.NOTIFICATION_SENT, data__action="resend_requested").get()
        assert event.data["to"] == [POOL[1], POOL[2]]
