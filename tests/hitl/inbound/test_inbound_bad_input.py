"""A catalogue of hostile or broken inbound email: each gets a clear outcome, never a 500."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from hitl.models import HITLRequest, InboundEmail
from tests.support import esp_payloads as esp
from tests.support.base import World
from tests.support.inbound import REVIEWER

pytestmark = pytest.mark.django_db


def post_raw(raw: bytes | str, to: str, sender: str = REVIEWER):
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return esp.post(
        Client(), "mailgun", esp.mailgun_mime(text.encode("utf-8", errors="replace"), sender, to), mime=True
    )


class TestBadInput:
    def test_malformed_mime(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = f'From: {REVIEWER}\nTo: {reply_to}\nContent-Type: multipart/mixed; boundary="nope"\n\n--wrong\nbroken'
        response = post_raw(raw, reply_to)
        assert response.status_code == 200
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        record = InboundEmail.objects.get()
        assert record.outcome == "refused" and record.reason == "invalid_answer"  # nothing readable → told so

    def test_a_huge_body_is_cut_not_choked_on(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body="approved\n\n" + ("lorem ipsum " * 200_000))
        assert post_raw(raw, reply_to).status_code == 200
        request = HITLRequest.objects.get(pk=request_id)
        assert request.status == "responded" and request.resolution.outcome == "approved"
        assert len(request.resolution.result["feedback"]) <= 200_000

    def test_an_unknown_charset(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = (
            f"From: {REVIEWER}\nTo: {reply_to}\nSubject: Re\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=x-klingon-1\nContent-Transfer-Encoding: 8bit\n\napproved\n"
        )
        assert post_raw(raw, reply_to).status_code == 200
        assert HITLRequest.objects.get(pk=request_id).resolution.outcome == "approved"

    def test_an_html_only_reply(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = esp.raw_reply(
            sender=REVIEWER,
            to=reply_to,
            body="",
            html="<p>Rejected</p><p>not <b>now</b></p><blockquote>approved?</blockquote>",
        )
        assert post_raw(raw, reply_to).status_code == 200
        result = HITLRequest.objects.get(pk=request_id).resolution.result
        assert (result["outcome"], result["feedback"]) == ("rejected", "not now")

    def test_a_missing_from_is_ignored(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = f"To: {reply_to}\nSubject: Re\n\napproved\n"
        assert post_raw(raw, reply_to, sender="").status_code == 200
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        assert InboundEmail.objects.get().reason == "no_sender"
        assert mail.outbox == []

    def test_many_recipients_still_find_the_token(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        others = ", ".join(f"person{i}@example.org" for i in range(300))
        raw = esp.raw_reply(sender=REVIEWER, to=f"{others}, {reply_to}", body="approved")
        assert post_raw(raw, reply_to).status_code == 200
        assert HITLRequest.objects.get(pk=request_id).status == "responded"

    def test_no_token_anywhere_is_recorded_and_not_answered(self, world: World) -> None:
        raw = esp.raw_reply(sender=REVIEWER, to="hello@reply.hitl.example.test", body="approved")
        assert post_raw(raw, "hello@reply.hitl.example.test").status_code == 200
        record = InboundEmail.objects.get()
        assert (record.outcome, record.reason) == ("refused", "no_token")
        assert "could not tell which review request" in record.detail
        assert mail.outbox == []  # the From of mail without our token may be anyone's: no backscatter

    def test_garbage_bytes(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = b"\x00\xff\xfe" * 1000 + f"\nFrom: {REVIEWER}\n".encode()
        response = post_raw(raw, reply_to)
        assert response.status_code == 200
        assert HITLRequest.objects.get(pk=request_id).status == "pending"


class TestNulBytes:
    def test_nul_bytes_in_a_reply_are_dropped(self, pending: tuple[str, str]) -> None:
        request_id, reply_to = pending
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body="approved\x00\n\nfine\x00 by me")
        assert post_raw(raw, reply_to).status_code == 200
        result = HITLRequest.objects.get(pk=request_id).resolution.result
        assert (result["outcome"], result["feedback"]) == ("approved", "fine by me")
