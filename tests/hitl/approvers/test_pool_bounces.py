"""Bounces that arrive later (SPEC §4, §13): an ESP's tracking webhook (Postmark's real bounce payload
through Anymail's authenticated /anymail/postmark/tracking/) or a delivery report mailed back (RFC 3464,
through Mailgun's inbound MIME URL) is matched to the notification it is about, recorded once on the
approver's seat, the request and the audit log; with several approvers it says when the policy can no
longer be met. A report that cannot prove it is about our email (the Reply-To token) changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEvent, EventType
from hitl.models import Approver, HITLRequest, InboundEmail, SentEmail
from tests.support import esp_payloads as esp
from tests.support.base import World

pytestmark = pytest.mark.django_db

POOL = ["ann@example.com", "bob@example.com", "cid@example.com"]


@pytest.fixture(autouse=True)
def anymail_backend(settings: Any) -> None:
    """Anymail's test backend: what an ESP backend does on send, including `anymail_status`."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


def postmark_bounce(sent: SentEmail, *, auth: str | None = esp.BASIC_AUTH, kind: str = "HardBounce") -> Any:
    payload = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": sent.esp_message_id,
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": sent.to,
        "From": "hitl@localhost",
        "BouncedAt": "2026-12-03T08:00:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "[Review] ...",
    }
    extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return Client().post(
        "/anymail/postmark/tracking/", data=json.dumps(payload), content_type="application/json", **extra
    )


def sent_to(request_id: str, email: str) -> SentEmail:
    return SentEmail.objects.get(request__pk=request_id, to=email)


class TestTrackedBounces:
    def test_every_notification_is_remembered_with_the_esps_id(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        sent = {s.to: s for s in SentEmail.objects.filter(request_id=created["id"])}
        assert sorted(sent) == POOL
        assert all(
            s.esp_message_id and s.message_id.startswith("<hitl-") and "reply+" in s.reply_to for s in sent.values()
        )
        assert len({s.esp_message_id for s in sent.values()}) == 3

    def test_a_bounce_marks_the_seat_and_says_the_policy_cannot_be_met(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        assert postmark_bounce(sent_to(created["id"], POOL[1])).status_code == 200
        seat = Approver.objects.get(request_id=created["id"], email=POOL[1])
        assert seat.notification_error.startswith("Bounced for bob@example.com: The server was unable")
        request = HITLRequest.objects.get(pk=created["id"])
        assert (
            "The policy (all, 3 decision(s) needed) cannot be met: 0 decided and 2 more" in request.notification_error
        )
        assert request.notification_failures == 1 and request.is_pending
        event = AuditEvent.objects.get(event_type=EventType.NOTIFICATION_FAILED, target_id=created["id"])
        assert event.data["to"] == POOL[1] and event.data["bounce"] and event.data["policy_at_risk"]
        # Postmark retries its webhook: the same bounce is recorded once.
        assert postmark_bounce(sent_to(created["id"], POOL[1])).status_code == 200
        assert AuditEvent.objects.filter(event_type=EventType.NOTIFICATION_FAILED).count() == 1
        assert HITLRequest.objects.get(pk=created["id"]).notification_failures == 1

    def test_a_quorum_is_at_risk_only_when_too_few_can_be_reached(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="quorum", required=2)
        postmark_bounce(sent_to(created["id"], POOL[0]))
        first = AuditEvent.objects.get(event_type=EventType.NOTIFICATION_FAILED)
        assert "policy_at_risk" not in first.data
        assert "cannot be met" not in HITLRequest.objects.get(pk=created["id"]).notification_error
        postmark_bounce(sent_to(created["id"], POOL[2]))
        assert "cannot be met: 0 decided and 1 more" in HITLRequest.objects.get(pk=created["id"]).notification_error

    def test_a_classic_request_records_the_bounce_on_the_request(self, world: World) -> None:
        created = world.create()
        sent = SentEmail.objects.get(request_id=created["id"])
        postmark_bounce(sent)
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notification_error.startswith(f"Bounced for {sent.to}:")
        assert SentEmail.objects.get(pk=sent.pk).bounced_at is not None

    def test_an_unauthenticated_or_unknown_bounce_changes_nothing(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        sent = sent_to(created["id"], POOL[1])
        assert postmark_bounce(sent, auth=None).status_code in (400, 401, 403)
        sent.esp_message_id = "not-one-of-ours"
        assert postmark_bounce(sent).status_code == 200
        assert not AuditEvent.objects.filter(event_type=EventType.NOTIFICATION_FAILED).exists()
        assert not Approver.objects.exclude(notification_error="").exists()

    def test_a_soft_bounce_is_not_a_failure(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="all")
        postmark_bounce(sent_to(created["id"], POOL[1]), kind="Transient")
        assert not AuditEvent.objects.filter(event_type=EventType.NOTIFICATION_FAILED).exists()


def delivery_report(sent: SentEmail, *, reply_to: str | None = None) -> bytes:
    """What a receiving server mails back (RFC 3464), quoting the bounced message's headers."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: hitl@localhost\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.com.\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {sent.to}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {sent.message_id}\r\nReply-To: {reply_to if reply_to is not None else sent.reply_to}\r\n"
        f"To: {sent.to}\r\nSubject: [Review] Please review\r\n"
        "\r\n--B--\r\n"
    ).encode()


class TestMailedBackReports:
    def test_a_delivery_report_is_matched_by_message_id_and_reply_to(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="any")
        sent = sent_to(created["id"], POOL[2])
        raw = delivery_report(sent)
        response = esp.post(
            Client(), "mailgun", esp.mailgun_mime(raw, "MAILER-DAEMON@mx.example.com", "hitl@localhost"), mime=True
        )
        assert response.status_code == 200
        logged = InboundEmail.objects.get()
        assert (logged.outcome, logged.reason) == ("ignored", "delivery_report")
        assert "recorded on its request" in logged.detail
        seat = Approver.objects.get(request_id=created["id"], email=POOL[2])
        assert seat.notification_error == "Bounced for cid@example.com: 5.1.1 smtp; 550 5.1.1 user unknown"
        assert "cannot be met" not in HITLRequest.objects.get(pk=created["id"]).notification_error
        assert [m.to for m in mail.outbox if m.to == ["MAILER-DAEMON@mx.example.com"]] == []  # never answered

    def test_a_report_without_our_reply_to_token_is_not_believed(self, world: World) -> None:
        created = world.create(approvers=POOL, policy="any")
        sent = sent_to(created["id"], POOL[2])
        raw = delivery_report(sent, reply_to="reply+forged@localhost")
        esp.post(
            Client(), "mailgun", esp.mailgun_mime(raw, "MAILER-DAEMON@mx.example.com", "hitl@localhost"), mime=True
        )
        assert InboundEmail.objects.get().detail == "A delivery report naming no notification of ours."
        assert not Approver.objects.exclude(notification_error="").exists()
        assert not AuditEvent.objects.filter(event_type=EventType.NOTIFICATION_FAILED).exists()


def test_ops_staff_see_sent_emails_and_bounces_in_the_admin(world: World) -> None:
    from django.contrib.auth import get_user_model

    created = world.create(approvers=POOL, policy="all")
    postmark_bounce(sent_to(created["id"], POOL[1]))
    ops = Client()
    ops.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
    page = ops.get("/admin/hitl/sentemail/?bounced=yes").content.decode()
    assert f'field-to">{POOL[1]}' in page and f'field-to">{POOL[0]}' not in page and "unable to deliver" in page
    assert ops.get("/admin/hitl/sentemail/add/").status_code == 403
