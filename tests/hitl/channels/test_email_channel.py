"""The email loop end to end through the real Anymail inbound URLs (SPEC §4, issue 3)."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.utils import parseaddr
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from hitl.lib.reply_tokens import make_token
from hitl.models import HITLRequest, InboundEmail
from tests.support import esp_payloads as esp
from tests.support.base import World

pytestmark = pytest.mark.django_db

REVIEWER = "reviewer@example.com"
ESPS = ["postmark", "mailgun", "sendgrid"]


def new_request(world: World, **payload: object) -> tuple[dict, str]:
    """Create a request via the API; return it and the Reply-To address of its notification."""
    mail.outbox.clear()
    created = world.create(assign_to=REVIEWER, **payload)
    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    notification = mail.outbox[0]
    assert notification.to == [REVIEWER]
    reply_to = notification.reply_to[0]
    assert re.fullmatch(r"reply\+[a-z2-7]{26}-[0-9a-z]+-[a-z2-7]{20}@reply\.hitl\.example\.test", reply_to)
    assert len(reply_to.split("@")[0]) <= 64
    mail.outbox.clear()
    return created, reply_to


class TestNotification:
    def test_it_carries_message_content_options_link_and_threading(self, world: World) -> None:
        mail.outbox.clear()
        world.create(
            assign_to=REVIEWER,
            message="Please review this content for brand compliance:",
            content="# Q1 copy\n\n```python\nprint('hi')\n```\n\n<script>alert(1)</script>",
            emit_options=["approved", "rejected", "needs_revision"],
        )
        sent = mail.outbox[0]
        html = sent.alternatives[0][0]
        assert "Please review this content" in sent.subject
        assert "needs_revision" in sent.body and "https://hitl.example.test/r/" in sent.body
        assert "<h1>Q1 copy</h1>" in html and "<script>" not in html
        assert sent.extra_headers["Message-ID"].startswith("<hitl-")
        assert sent.extra_headers["Auto-Submitted"] == "auto-generated"
        assert AuditEvent.objects.filter(event_type="notification.sent").count() == 1
        assert HITLRequest.objects.get().notified_at is not None

    def test_the_deployment_switch_turns_email_off(self, world: World) -> None:
        world.deployment.email_notifications = False
        world.deployment.save()
        mail.outbox.clear()
        world.create(assign_to=REVIEWER)
        assert mail.outbox == []

    def test_a_failing_backend_is_recorded_on_the_request_and_audited(self, world: World, settings) -> None:
        settings.EMAIL_BACKEND = "tests.support.failing_backend.FailingBackend"
        created = world.create(assign_to=REVIEWER)
        request = HITLRequest.objects.get(pk=created["id"])
        assert "SMTP down" in request.notification_error and request.notified_at is None
        assert AuditEvent.objects.filter(event_type="notification.failed", target_id=created["id"]).exists()


TRICKY = 'Don\'t ship "Q1 & Q2" -> <b>live</b>?'


def header(message, name: str) -> str:
    """The header as a mail client shows it, after the real MIME encoding."""
    return str(make_header(decode_header(message.message()[name])))


class TestPlainTextIsNotHtmlEscaped:
    """Issue 13: subjects and text parts carry quotes, ampersands and arrows as written; HTML escapes."""

    def test_it_keeps_the_characters_in_notification_confirmation_and_reply_error(self, world: World) -> None:
        world.deployment.name = "R&D's desk"
        world.deployment.save()
        mail.outbox.clear()
        created = world.create(assign_to=REVIEWER, message=TRICKY)
        notification = mail.outbox[0]
        reply_to = notification.reply_to[0]
        assert notification.subject == f"[Review] {TRICKY}"
        assert header(notification, "Subject") == f"[Review] {TRICKY}"
        assert TRICKY in notification.body and "R&D's desk" in notification.body
        html = notification.alternatives[0][0]
        assert "Don&#x27;t ship &quot;Q1 &amp; Q2&quot; -&gt; &lt;b&gt;live&lt;/b&gt;?" in html
        assert TRICKY not in html and "R&amp;D&#x27;s desk" in html

        mail.outbox.clear()
        esp.reply(Client(), "postmark", sender="mallory@evil.example", to=reply_to, body="approved")
        error = mail.outbox[0]
        assert error.subject == f"Re: [Review] {TRICKY} — your reply could not be used"
        assert header(error, "Subject") == error.subject
        assert "R&D's desk" in error.body and "&amp;" not in error.body and "&#x27;" not in error.body
        assert "R&amp;D&#x27;s desk" in error.alternatives[0][0]

        mail.outbox.clear()
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="approved\nQ1 & Q2 -> fine, isn't it?")
        confirmation = mail.outbox[0]
        assert HITLRequest.objects.get(pk=created["id"]).status == "responded"
        assert confirmation.subject == f"Re: [Review] {TRICKY} — answer recorded"
        assert header(confirmation, "Subject") == confirmation.subject
        assert f"Request:  {TRICKY}" in confirmation.body
        assert "Feedback: Q1 & Q2 -> fine, isn't it?" in confirmation.body
        assert "Q1 &amp; Q2 -&gt; fine, isn&#x27;t it?" in confirmation.alternatives[0][0]


class TestReplyAccepted:
    @pytest.mark.parametrize("provider", ESPS)
    def test_an_emailed_answer_resolves_the_request_and_confirms(self, world: World, provider: str) -> None:
        created, reply_to = new_request(world, method_name="review_content", message="Please review")
        body = "Approved!\n\nLooks good to me.\n\n" + esp.QUOTED_ORIGINAL
        response = esp.reply(Client(), provider, sender="Reviewer@Example.com", to=reply_to, body=body)
        assert response.status_code == 200, response.content
        result = world.client_for("key").get(f"/api/v1/requests/{created['id']}/result/").json()
        assert result["status"] == "responded"
        assert (result["outcome"], result["feedback"], result["source"]) == ("approved", "Looks good to me.", "email")
        assert result["responder"] == REVIEWER
        assert len(mail.outbox) == 1
        confirmation = mail.outbox[0]
        assert confirmation.to == [REVIEWER.lower()] or parseaddr(confirmation.to[0])[1].lower() == REVIEWER
        assert "answer recorded" in confirmation.subject
        assert confirmation.extra_headers["References"].startswith("<hitl-")
        assert InboundEmail.objects.get().outcome == "accepted"

    def test_raw_mime_from_mailgun_and_an_outlook_reply_with_a_prefix_option(self, world: World) -> None:
        created, reply_to = new_request(world, emit_options=["approved", "rejected", "needs_revision"])
        body = (
            "needs_revision: tighten the intro\n\n________________________________\n"
            "From: HITL <hitl@localhost>\nSent: Tuesday\nSubject: Please review\n\nold text"
        )
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body=body)
        response = esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True)
        assert response.status_code == 200
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["outcome"], result["feedback"]) == ("needs_revision", "tighten the intro")

    def test_a_german_reply_and_html_only_mail(self, world: World) -> None:
        created, reply_to = new_request(world)
        html = (
            '<div dir="ltr">Rejected<div>Zahlen stimmen nicht.</div></div>'
            '<div class="gmail_quote">Am 14.01.2026 um 12:00 schrieb HITL:<blockquote>approved?</blockquote></div>'
        )
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body="", html=html)
        esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True)
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["outcome"], result["feedback"]) == ("rejected", "Zahlen stimmen nicht.")

    def test_an_outlook_html_only_reply_keeps_only_the_new_text(self, world: World) -> None:
        html = esp.outlook_html_reply('Rejected</div>\r\n<div class="elementToProof">Numbers are off in Q2.')
        created, reply_to = new_request(world)
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body="", html=html)
        assert esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True).status_code == 200
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["outcome"], result["feedback"]) == ("rejected", "Numbers are off in Q2.")

        created, reply_to = new_request(world, mode="text", emit_options=None)
        payload = esp.postmark(
            REVIEWER, reply_to, "", html=esp.outlook_html_reply("Use the blue logo &amp; the new tagline.")
        )
        assert esp.post(Client(), "postmark", payload).status_code == 200
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert result["text"] == result["feedback"] == "Use the blue logo & the new tagline."
        assert "From:" not in result["text"] and "brand compliance" not in result["text"]

        created, reply_to = new_request(world)
        html = esp.outlook_desktop_html_reply("Rejected\nThe numbers in Q2 are wrong.")
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body="", html=html)
        assert esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True).status_code == 200
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["outcome"], result["feedback"]) == ("rejected", "The numbers in Q2 are wrong.")

    @pytest.mark.parametrize(
        ("first_line", "label", "feedback"),
        [
            ("3. this one is best", "Go", "this one is best"),
            ("#2) the Django one", "Django", "the Django one"),
            ("2", "Django", ""),
            ("#2", "Django", ""),
            ("django!", "Django", ""),
            ("Django: fewer moving parts", "Django", "fewer moving parts"),
            ("C++ (modern). Fast, but hard to hire for", "C++ (modern)", "Fast, but hard to hire for"),
            ("c++ (modern)", "C++ (modern)", ""),
        ],
    )
    def test_a_choice_followed_by_a_comment(self, world: World, first_line: str, label: str, feedback: str) -> None:
        items = [{"title": "Rust"}, {"title": "Django"}, {"title": "Go"}, {"title": "C++ (modern)"}]
        created, reply_to = new_request(world, mode="choices", emit_options=None, options=items, label_path="title")
        body = f"{first_line}\n\n{esp.QUOTED_ORIGINAL}"
        assert esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body=body).status_code == 200
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["choice"]["label"], result["feedback"]) == (label, feedback)

    def test_a_comment_on_the_next_line_and_several_choices_with_a_comment(self, world: World) -> None:
        items = [{"title": "Rust"}, {"title": "Django"}, {"title": "Go"}]
        created, reply_to = new_request(world, mode="choices", emit_options=None, options=items, label_path="title")
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="3. this one\nand it is fast")
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["choice"]["label"], result["feedback"]) == ("Go", "this one\n\nand it is fast")

        created, reply_to = new_request(
            world, mode="choices", emit_options=None, options=items, label_path="title", multiple=True
        )
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="1, 3 - both are fine")
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert [c["label"] for c in result["choices"]] == ["Rust", "Go"] and result["feedback"] == "both are fine"

    def test_a_number_out_of_range_with_a_comment_is_refused_with_the_options(self, world: World) -> None:
        items = [{"title": "Rust"}, {"title": "Django"}]
        created, reply_to = new_request(world, mode="choices", emit_options=None, options=items, label_path="title")
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="7. this one is best")
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        assert "1. Rust" in mail.outbox[0].body and "2. Django" in mail.outbox[0].body

    def test_choices_by_number_approval_by_word_and_text_mode(self, world: World) -> None:
        items = [{"title": "Rust"}, {"title": "Django"}]
        created, reply_to = new_request(world, mode="choices", emit_options=None, options=items, label_path="title")
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="2\nthe Django one")
        assert HITLRequest.objects.get(pk=created["id"]).resolution.result["choice"]["label"] == "Django"

        created, reply_to = new_request(world, mode="approval", emit_options=None)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="lgtm\n\n" + esp.QUOTED_ORIGINAL)
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert result["outcome"] == "approved" and result["metadata"]["approved"] is True

        created, reply_to = new_request(world, mode="text", emit_options=None)
        esp.reply(
            Client(), "sendgrid", sender=REVIEWER, to=reply_to, body="Use the blue logo.\n\n" + esp.QUOTED_ORIGINAL
        )
        assert HITLRequest.objects.get(pk=created["id"]).resolution.result["text"] == "Use the blue logo."

    def test_an_esp_retry_of_the_same_message_changes_nothing(self, world: World) -> None:
        created, reply_to = new_request(world)
        payload = esp.postmark(REVIEWER, reply_to, "approved")
        esp.post(Client(), "postmark", payload)
        esp.post(Client(), "postmark", payload)
        assert len(mail.outbox) == 1  # one confirmation, no "already answered" error
        assert InboundEmail.objects.count() == 1


class TestReplyRefused:
    def assert_refused(self, world: World, request_id: str, reason: str, *, error_email: bool = True) -> None:
        assert HITLRequest.objects.get(pk=request_id).status == "pending" or reason == "not_pending"
        record = InboundEmail.objects.latest("created_at")
        assert (record.outcome, record.reason) == ("refused", reason)
        assert AuditEvent.objects.filter(event_type="response.refused", target_id=request_id).exists()
        if error_email:
            assert len(mail.outbox) == 1 and "could not be used" in mail.outbox[0].subject

    def test_a_forged_token(self, world: World) -> None:
        created, reply_to = new_request(world)
        local, domain = reply_to.split("@")
        forged = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
        esp.reply(Client(), "postmark", sender=REVIEWER, to=forged, body="approved")
        # No valid token of ours: the From may be anyone's, so nothing is sent back (backscatter).
        self.assert_refused(world, created["id"], "forged_token", error_email=False)
        assert mail.outbox == []
        assert "No error email was sent" in InboundEmail.objects.get().detail

    def test_the_token_of_another_request(self, world: World) -> None:
        first, first_reply_to = new_request(world)
        second, second_reply_to = new_request(world)
        rid_first = first_reply_to.split("+")[1].split("-")[0]
        rid_second = second_reply_to.split("+")[1].split("-")[0]
        spliced = second_reply_to.replace(rid_second, rid_first)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=spliced, body="approved")
        self.assert_refused(world, first["id"], "forged_token", error_email=False)
        assert mail.outbox == []
        assert HITLRequest.objects.get(pk=second["id"]).status == "pending"

    def test_an_expired_token_gets_a_fresh_notification(self, world: World, settings) -> None:
        created, _ = new_request(world)
        request = HITLRequest.objects.get(pk=created["id"])
        expired = f"reply+{make_token(request.pk, REVIEWER, ttl=-60)}@{settings.HITL_INBOUND_DOMAIN}"
        esp.reply(Client(), "mailgun", sender=REVIEWER, to=expired, body="approved")
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        subjects = [m.subject for m in mail.outbox]
        assert any("could not be used" in s for s in subjects)
        error = next(m for m in mail.outbox if "could not be used" in m.subject)
        assert "expired" in error.body and "fresh notification" in error.body
        fresh = [m for m in mail.outbox if m.subject.startswith("[Review]")]
        assert len(fresh) == 1 and fresh[0].reply_to[0] != expired
        assert InboundEmail.objects.latest("created_at").reason == "expired_token"

    def test_the_wrong_sender(self, world: World) -> None:
        created, reply_to = new_request(world)
        esp.reply(Client(), "sendgrid", sender="mallory@evil.example", to=reply_to, body="approved")
        self.assert_refused(world, created["id"], "wrong_sender")
        assert mail.outbox[0].to == ["mallory@evil.example"]
        assert "not the assignee" in mail.outbox[0].body
        assert REVIEWER not in mail.outbox[0].body  # don't leak who the request went to

    def test_an_already_answered_request_says_who_when_and_how(self, world: World) -> None:
        created, reply_to = new_request(world)
        world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "rejected"}, format="json"
        )
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="approved")
        self.assert_refused(world, created["id"], "not_pending")
        body = mail.outbox[0].body
        assert "already answered" in body and "via api" in body and "api-key:" in body

    def test_an_unknown_option_lists_the_valid_ones(self, world: World) -> None:
        created, reply_to = new_request(world, mode="approval", emit_options=None)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="perhaps later")
        self.assert_refused(world, created["id"], "invalid_answer")
        assert "approve" in mail.outbox[0].body and "reject" in mail.outbox[0].body

    @pytest.mark.parametrize("provider", ESPS)
    def test_a_bad_webhook_secret_is_refused_and_nothing_is_recorded(self, world: World, provider: str) -> None:
        created, reply_to = new_request(world)
        bad = "Basic " + __import__("base64").b64encode(b"esp-user:wrong").decode()
        response = esp.reply(Client(), provider, sender=REVIEWER, to=reply_to, body="approved", auth=bad)
        assert 400 <= response.status_code < 500
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        assert InboundEmail.objects.count() == 0 and mail.outbox == []

    def test_a_bad_mailgun_signature_is_refused(self, world: World) -> None:
        created, reply_to = new_request(world)
        payload = esp.mailgun_parsed(REVIEWER, reply_to, "approved")
        payload["signature"] = "0" * 64
        assert esp.post(Client(), "mailgun", payload).status_code == 400
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"

    def test_error_emails_are_rate_limited_per_address(self, world: World) -> None:
        created, reply_to = new_request(world)
        for _ in range(8):
            esp.reply(Client(), "postmark", sender="mallory@evil.example", to=reply_to, body="approved")
        assert len(mail.outbox) == 5
        assert InboundEmail.objects.filter(reason="wrong_sender").count() == 8


class TestMachineMail:
    @pytest.mark.parametrize(
        "headers",
        [
            {"Auto-Submitted": "auto-replied"},
            {"Precedence": "bulk"},
            {"X-Autoreply": "yes"},
            {"Return-Path": "<>"},
        ],
    )
    def test_out_of_office_changes_nothing_and_sends_nothing(self, world: World, headers: dict) -> None:
        created, reply_to = new_request(world)
        body = "I am out of the office until Monday. approved"
        response = esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body=body, headers=headers)
        assert response.status_code == 200
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending"
        assert mail.outbox == []
        assert InboundEmail.objects.get().outcome == "ignored"
        assert AuditEvent.objects.filter(event_type="email.ignored").exists()

    def test_bounces_from_mailer_daemon_are_ignored(self, world: World) -> None:
        created, reply_to = new_request(world)
        esp.reply(Client(), "sendgrid", sender="MAILER-DAEMON@mx.example.org", to=reply_to, body="approved")
        assert HITLRequest.objects.get(pk=created["id"]).status == "pending" and mail.outbox == []


class TestMtaPipe:
    def test_a_raw_eml_through_the_management_command(self, world: World, monkeypatch) -> None:
        created, reply_to = new_request(world)
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body="Approved. Great article!\n\n" + esp.QUOTED_ORIGINAL)

        class Stdin:
            buffer = __import__("io").BytesIO(raw)

        monkeypatch.setattr("sys.stdin", Stdin)
        out = StringIO()
        call_command("process_inbound_email", stdout=out)
        assert out.getvalue().strip().splitlines()[-1].startswith("accepted")
        result = HITLRequest.objects.get(pk=created["id"]).resolution.result
        assert (result["outcome"], result["feedback"], result["source"]) == ("approved", "Great article!", "email")
        assert InboundEmail.objects.get().received_via == "mta"
