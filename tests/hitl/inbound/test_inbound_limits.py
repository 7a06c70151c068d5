"""Big replies and unwalkable ones (issue 14): a reply with a large attachment is read (its text), one
over the limit is recorded and its assignee told, MIME nested thousands deep is a recorded permanent
failure (200 to the ESP, exit 65 to the MTA), never a 500 or a retry loop."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from hitl.models import HITLRequest, InboundEmail
from tests.support import esp_payloads as esp
from tests.support.base import World
from tests.support.inbound import REVIEWER

pytestmark = pytest.mark.django_db


def with_attachment(sender: str, to: str, body: str, size: int) -> bytes:
    message = esp.EmailMessage()
    message["From"] = f"Reviewer Person <{sender}>"
    message["To"] = to
    message["Subject"] = "Re: [Review] Please review"
    message["Message-ID"] = "<big-1@mail.example.org>"
    message.set_content(body)
    message.add_attachment(b"\x89PNG" + b"\x00" * size, maintype="image", subtype="png", filename="scan.png")
    return bytes(message)


def nested(sender: str, to: str, depth: int) -> bytes:
    head = f"From: {sender}\nTo: {to}\nSubject: Re\nMIME-Version: 1.0\nMessage-ID: <deep-{depth}@x.test>\n"
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth))
    closing = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return (head + opening + "Content-Type: text/plain\n\napproved\n" + closing).encode()


def run_mta(raw: bytes, monkeypatch) -> tuple[str, int]:
    class Stdin:
        buffer = io.BytesIO(raw)

    monkeypatch.setattr("sys.stdin", Stdin)
    out = io.StringIO()
    try:
        call_command("process_inbound_email", stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return out.getvalue(), int(exit_.code or 0)
    return out.getvalue(), 0


class TestBigReplies:
    def test_it_reads_the_text_of_a_postmark_reply_with_a_30_mb_attachment(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        payload = esp.postmark(REVIEWER, reply_to, "Approved. Scan attached.")
        content = base64.b64encode(b"\x00" * 30 * 1024 * 1024).decode()
        payload["Attachments"] = [
            {"Name": "scan.pdf", "Content": content, "ContentType": "application/pdf", "ContentLength": 1}
        ]
        response = esp.post(Client(), "postmark", payload)
        assert response.status_code == 200
        result = HITLRequest.objects.get(pk=request_id).resolution.result
        assert (result["outcome"], result["feedback"]) == ("approved", "Scan attached.")
        assert "1 attachment(s) not kept" in InboundEmail.objects.get().detail

    def test_it_reads_a_raw_mime_field_larger_than_a_normal_form_allows(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = with_attachment(REVIEWER, reply_to, "approved", 4 * 1024 * 1024)  # body-mime ~5.5 MB
        response = esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True)
        assert response.status_code == 200
        assert HITLRequest.objects.get(pk=request_id).resolution.outcome == "approved"

    def test_over_the_limit_it_records_and_tells_the_assignee(self, pending: tuple[str, str], settings) -> None:
        settings.HITL_INBOUND_MAX_BYTES = 1_000_000
        request_id, reply_to = pending
        raw = with_attachment(REVIEWER, reply_to, "approved", 2_000_000)
        response = esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True)
        assert response.status_code == 200 and response.json()["code"] == "too_large"  # the ESP stops retrying
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        record = InboundEmail.objects.get()
        assert (record.outcome, record.reason, record.sender) == ("refused", "too_large", REVIEWER)
        assert AuditEvent.objects.get(event_type="response.refused").data["reason"] == "too_large"
        assert [m.to for m in mail.outbox] == [[REVIEWER]]
        assert "without attachments" in mail.outbox[0].body

    def test_over_the_limit_a_stranger_gets_nothing_and_no_auth_gets_413(
        self, pending: tuple[str, str], settings
    ) -> None:
        settings.HITL_INBOUND_MAX_BYTES = 1_000_000
        request_id, reply_to = pending
        raw = with_attachment("mallory@evil.example", reply_to, "approved", 2_000_000)
        esp.post(Client(), "mailgun", esp.mailgun_mime(raw, "mallory@evil.example", reply_to), mime=True)
        assert InboundEmail.objects.get().reason == "too_large" and mail.outbox == []

        bad = "Basic " + base64.b64encode(b"esp-user:wrong").decode()
        payload = esp.mailgun_mime(raw, REVIEWER, reply_to)
        response = esp.post(Client(), "mailgun", payload, mime=True, auth=bad)
        assert response.status_code == 413 and InboundEmail.objects.count() == 1
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_other_urls_keep_the_normal_limit(self, world: World) -> None:
        body = json.dumps({"message": "x" * 3_000_000})
        response = world.client_for("key").post("/api/v1/requests/", body, content_type="application/json")
        assert response.status_code == 400 and response.json()["code"] == "too_large"
        page = Client().post("/accounts/login/", {"username": "x" * 3_000_000, "password": "y"})
        assert page.status_code == 413


class TestUnwalkableMime:
    @pytest.mark.parametrize("depth", [5000, 1200])
    def test_the_webhook_records_it_as_permanent_and_answers_200(self, pending: tuple[str, str], depth: int) -> None:
        request_id, reply_to = pending
        raw = nested(REVIEWER, reply_to, depth)
        response = esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True)
        assert response.status_code == 200 and response.json()["code"] == "unprocessable"
        record = InboundEmail.objects.get()
        assert (record.outcome, record.reason) == ("refused", "unprocessable")
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_a_deep_but_parseable_message_is_walked_without_recursion(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = nested(REVIEWER, reply_to, 400)
        response = esp.post(Client(), "mailgun", esp.mailgun_mime(raw, REVIEWER, reply_to), mime=True)
        assert response.status_code == 200
        # The text sits deeper than any reply nests: not read, so the sender is asked for an answer.
        assert InboundEmail.objects.get().reason == "invalid_answer"
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_the_mta_pipe_exits_65_so_the_mta_does_not_retry(self, pending: tuple[str, str], monkeypatch) -> None:
        _, reply_to = pending
        _, code = run_mta(nested(REVIEWER, reply_to, 5000), monkeypatch)
        assert code == 65
        assert InboundEmail.objects.get().reason == "unprocessable"

    def test_the_mta_pipe_records_an_oversized_message(self, pending: tuple[str, str], monkeypatch, settings) -> None:
        settings.HITL_INBOUND_MAX_BYTES = 500_000
        _, reply_to = pending
        out, code = run_mta(with_attachment(REVIEWER, reply_to, "approved", 1_000_000), monkeypatch)
        assert code == 0 and out.startswith("refused too_large")
        assert InboundEmail.objects.get().reason == "too_large"
        assert [m.to for m in mail.outbox] == [[REVIEWER]]


class TestOversizeOnEveryShape:
    """The limit and the sniff hold for JSON posts (Postmark) and parsed form posts (SendGrid) too, not
    only for a raw MIME field."""

    @pytest.mark.parametrize("esp_name", ["postmark", "sendgrid"])
    def test_over_the_limit_it_records_and_tells_the_assignee(
        self, pending: tuple[str, str], settings, esp_name: str
    ) -> None:
        settings.HITL_INBOUND_MAX_BYTES = 1_000_000
        request_id, reply_to = pending
        big = base64.b64encode(b"\x00" * 1_500_000).decode()
        if esp_name == "postmark":
            payload: Any = esp.postmark(REVIEWER, reply_to, "approved")
            payload["Attachments"] = [{"Name": "scan.png", "Content": big, "ContentType": "image/png"}]
        else:
            payload = {**esp.sendgrid_parsed(REVIEWER, reply_to, "approved"), "attachments": "1", "attachment1": big}
        response = esp.post(Client(), esp_name, payload)
        assert response.status_code == 200 and response.json()["code"] == "too_large"
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        record = InboundEmail.objects.get()
        assert (record.outcome, record.reason, record.sender) == ("refused", "too_large", REVIEWER)
        assert [m.to for m in mail.outbox] == [[REVIEWER]] and "without attachments" in mail.outbox[0].body
