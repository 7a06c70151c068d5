"""Inbound payloads in the shape each ESP really posts, modelled on django-anymail's own tests
(tests/test_postmark_inbound.py, test_mailgun_inbound.py, test_sendgrid_inbound.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from email.message import EmailMessage
from typing import Any

from django.test import Client

from tests.settings import ANYMAIL

BASIC_AUTH = "Basic " + base64.b64encode(ANYMAIL["WEBHOOK_SECRET"].encode()).decode()

QUOTED_ORIGINAL = (
    "On Tue, Jan 14, 2026 at 12:00 PM HITL <hitl@localhost> wrote:\n"
    "> Please review this content for brand compliance:\n"
    "> Reply with approved or rejected.\n"
)


def outlook_html_reply(answer_html: str) -> str:
    """An HTML-only reply as Outlook on the web / new Outlook / Outlook 365 writes it: the answer in
    `elementToProof` divs, the empty `#appendonsend` marker, an `<hr>`, the "From: … Sent: …" block in
    `#divRplyFwdMsg`, then the quoted original as plain siblings (not inside any quote container)."""
    return (
        '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n'
        '<style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} </style>\r\n'
        '</head>\r\n<body dir="ltr">\r\n'
        '<div class="elementToProof" style="font-family: Aptos, Aptos_EmbeddedFont, Aptos_MSFontService, '
        'Calibri, Helvetica, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);">\r\n'
        f"{answer_html}</div>\r\n"
        '<div id="appendonsend"></div>\r\n'
        '<hr style="display:inline-block;width:98%" tabindex="-1">\r\n'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt" '
        'color="#000000"><b>From:</b> HITL &lt;hitl@localhost&gt;<br>\r\n'
        "<b>Sent:</b> Wednesday, January 14, 2026 12:00 PM<br>\r\n"
        "<b>To:</b> Reviewer Person &lt;reviewer@example.com&gt;<br>\r\n"
        "<b>Subject:</b> [Review] Please review</font>\r\n<div>&nbsp;</div>\r\n</div>\r\n"
        '<div class="BodyFragment"><font size="2"><span style="font-size:11pt;">\r\n'
        '<div class="PlainText">Please review this content for brand compliance:<br>\r\n'
        "<br>\r\nHOW TO ANSWER<br>\r\nReply to this email. Put your answer on the first line:<br>\r\n"
        "&nbsp; approved<br>\r\n&nbsp; rejected<br>\r\n</div>\r\n</span></font></div>\r\n"
        "</body>\r\n</html>\r\n"
    )


def raw_reply(
    *,
    sender: str,
    to: str,
    body: str,
    subject: str = "Re: [Review] Please review",
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"Reviewer Person <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4()}@mail.example.org>"
    message["Date"] = "Wed, 14 Jan 2026 12:05:00 +0000"
    for name, value in (headers or {}).items():
        message[name] = value
    if body:
        message.set_content(body)
        if html:
            message.add_alternative(html, subtype="html")
    elif html:
        message.set_content(html, subtype="html")
    return bytes(message)


def postmark(sender: str, to: str, body: str, headers: dict[str, str] | None = None, html: str = "") -> dict[str, Any]:
    """Postmark's JSON (without "Include raw email"): FromFull/ToFull, TextBody, HtmlBody, Headers list."""
    header_list = [{"Name": "Return-Path", "Value": f"<{sender}>"}]
    header_list += [{"Name": "Message-ID", "Value": f"<{uuid.uuid4()}@mail.example.org>"}]
    header_list += [{"Name": k, "Value": v} for k, v in (headers or {}).items()]
    return {
        "FromFull": {"Email": sender, "Name": "Reviewer Person", "MailboxHash": ""},
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": to.split("@")[0].split("+", 1)[-1]}],
        "CcFull": [],
        "BccFull": [],
        "OriginalRecipient": to,
        "Subject": "Re: [Review] Please review",
        "MessageID": str(uuid.uuid4()),
        "Date": "Wed, 14 Jan 2026 12:05:00 +0000",
        "TextBody": body,
        "HtmlBody": html,
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": header_list,
        "Attachments": [],
    }


def mailgun_signature(signing_key: str = ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"]) -> dict[str, str]:
    timestamp, token = str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


def mailgun_parsed(sender: str, to: str, body: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Mailgun's forward() route, "fully parsed" form fields, signed with the webhook signing key."""
    message_headers = [
        ["From", f"Reviewer Person <{sender}>"],
        ["To", to],
        ["Subject", "Re: [Review] Please review"],
        ["Message-Id", f"<{uuid.uuid4()}@mail.example.org>"],
        *[[k, v] for k, v in (headers or {}).items()],
    ]
    return {
        "recipient": to,
        "sender": sender,
        "from": f"Reviewer Person <{sender}>",
        "To": to,
        "subject": "Re: [Review] Please review",
        "body-plain": body,
        "stripped-text": body.split("\n\nOn ")[0],
        "message-headers": json.dumps(message_headers),
        **mailgun_signature(),
    }


def mailgun_mime(raw: bytes, sender: str, to: str) -> dict[str, str]:
    """Mailgun's forward() to .../inbound_mime/: the raw message in body-mime."""
    return {"recipient": to, "sender": sender, "body-mime": raw.decode(), **mailgun_signature()}


def sendgrid_parsed(sender: str, to: str, body: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """SendGrid Inbound Parse (default, not "send raw"): a raw header block plus text/html fields."""
    header_block = "\n".join(
        [
            f"From: Reviewer Person <{sender}>",
            f"To: {to}",
            "Subject: Re: [Review] Please review",
            f"Message-ID: <{uuid.uuid4()}@mail.example.org>",
            "MIME-Version: 1.0",
            *[f"{k}: {v}" for k, v in (headers or {}).items()],
        ]
    )
    return {
        "headers": header_block,
        "from": f"Reviewer Person <{sender}>",
        "to": to,
        "subject": "Re: [Review] Please review",
        "text": body,
        "envelope": json.dumps({"to": [to], "from": sender}),
        "charsets": json.dumps({"to": "UTF-8", "subject": "UTF-8", "from": "UTF-8", "text": "UTF-8"}),
        "spam_score": "0.1",
    }


def post(client: Client, esp: str, payload: Any, *, auth: str | None = BASIC_AUTH, mime: bool = False):
    extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
    if esp == "postmark":
        return client.post(
            "/anymail/postmark/inbound/", data=json.dumps(payload), content_type="application/json", **extra
        )
    url = "/anymail/mailgun/inbound_mime/" if (esp == "mailgun" and mime) else f"/anymail/{esp}/inbound/"
    return client.post(url, data=payload, **extra)


def reply(
    client: Client, esp: str, *, sender: str, to: str, body: str, headers: dict[str, str] | None = None, **kw: Any
):
    builders = {"postmark": postmark, "mailgun": mailgun_parsed, "sendgrid": sendgrid_parsed}
    return post(client, esp, builders[esp](sender, to, body, headers), **kw)
