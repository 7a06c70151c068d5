"""Fuzz of Anymail's inbound URLs (issue 14): hostile headers, bodies, charsets, encodings, nesting and
strings (lone surrogates, NUL, huge) through real ESP payloads, raw MIME and parsed JSON. Never a 5xx;
the request is answered at most once, by its assignee."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.core import mail
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl.models import HITLRequest
from tests.support import esp_payloads as esp
from tests.support.base import build_world

pytestmark = pytest.mark.django_db(transaction=True)

REVIEWER = "reviewer@example.com"

_hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e", "=?utf-8?b?////?=", "=?x-bad?q?a?=", "\r\n\t", "é" * 300]),
    st.builds(lambda s, n: s * n, st.sampled_from(["[", "<", "(", "\\", '"', ",", "@"]), st.integers(1, 3000)),
)
_from = st.one_of(
    st.just(f"Reviewer <{REVIEWER}>"),
    st.builds(lambda t: f"{t} <{REVIEWER}>", _hostile_text),
    st.builds(lambda t: f"{REVIEWER}, {t}", _hostile_text),
    _hostile_text,
)
_content_type = st.sampled_from(
    [
        "text/plain; charset=utf-8",
        "text/plain; charset=x-unknown",
        "text/html",
        "multipart/alternative",
        'multipart/mixed; boundary="b"',
        "message/rfc822",
        "application/octet-stream",
        "",
    ]
)
_encoding = st.sampled_from(["", "base64", "quoted-printable", "8bit", "x-uuencode", "bogus"])


def _raw(sender: str, to: str, subject: str, content_type: str, encoding: str, body: str, depth: int) -> bytes:
    headers = f"From: {sender}\nTo: {to}\nSubject: {subject}\nMIME-Version: 1.0\n"
    nesting = "".join(f'Content-Type: multipart/mixed; boundary="d{i}"\n\n--d{i}\n' for i in range(depth))
    part = (f"Content-Type: {content_type}\n" if content_type else "") + (
        f"Content-Transfer-Encoding: {encoding}\n" if encoding else ""
    )
    text = headers + nesting + part + "\n" + body + "\n"
    return text.encode("utf-8", errors="surrogatepass")


def _post_form(client: Client, url: str, payload: dict[str, str]):
    """Form-encoded as a sender would, lone surrogates included (as invalid UTF-8 bytes)."""
    data = "&".join(f"{k}={quote(v, errors='surrogatepass')}" for k, v in payload.items())
    return client.post(url, data, content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION=esp.BASIC_AUTH)


def test_inbound_posts_never_get_a_server_error() -> None:
    world = build_world()
    mail.outbox.clear()
    created = world.create(assign_to=REVIEWER)
    reply_to = mail.outbox[0].reply_to[0]

    @given(
        sender=_from,
        subject=_hostile_text,
        content_type=_content_type,
        encoding=_encoding,
        body=_hostile_text,
        depth=st.sampled_from([0, 2, 60, 1500]),
        how=st.sampled_from(["mailgun_mime", "postmark", "sendgrid"]),
    )
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(sender: str, subject: str, content_type: str, encoding: str, body: str, depth: int, how: str) -> None:
        client = Client()
        if how == "mailgun_mime":
            raw = _raw(sender, reply_to, subject, content_type, encoding, body, depth)
            payload = esp.mailgun_mime(b"", REVIEWER, reply_to)
            payload["body-mime"] = raw.decode("utf-8", errors="surrogateescape")
            response = _post_form(client, "/anymail/mailgun/inbound_mime/", payload)
        elif how == "postmark":
            payload = esp.postmark(REVIEWER, reply_to, body, headers={"X-Fuzz": subject})
            payload["Subject"] = subject
            payload["FromFull"]["Name"] = sender
            response = client.post(
                "/anymail/postmark/inbound/",
                json.dumps(payload),
                content_type="application/json",
                HTTP_AUTHORIZATION=esp.BASIC_AUTH,
            )
        else:
            payload = esp.sendgrid_parsed(REVIEWER, reply_to, body)
            payload["from"] = sender
            payload["subject"] = subject
            payload["headers"] = payload["headers"].replace("Reviewer Person <", f"{sender[:50]} <")
            response = _post_form(client, "/anymail/sendgrid/inbound/", payload)
        assert response.status_code < 500, (how, sender[:80], subject[:80], body[:80], response.content[:300])

    check()
    request = HITLRequest.objects.get(pk=created["id"])
    if request.status == "responded":
        assert request.resolution.responder == REVIEWER
