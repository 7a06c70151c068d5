"""Inbound payloads in the shape each ESP really posts, modelled on django-anymail's own tests
(tests/test_postmark_inbound.py, test_mailgun_inbound.py, test_sendgrid_inbound.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
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


def outlook_desktop_html_reply(answer: str) -> str:
    """Outlook for Windows (Word HTML): no marker ids; the "From: … Sent: …" block sits in a div with a
    top border, the quoted original after it."""
    paragraphs = "".join(f"<p class=MsoNormal>{line}<o:p></o:p></p>" for line in answer.split("\n"))
    return (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>'
        '<meta http-equiv=Content-Type content="text/html; charset=utf-8">'
        "<style><!-- p.MsoNormal {margin:0in; font-size:11.0pt;} --></style></head>"
        f'<body lang=EN-US link="#0563C1"><div class=WordSection1>{paragraphs}'
        "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
        "<p class=MsoNormal><b>From:</b> HITL &lt;hitl@localhost&gt; <br><b>Sent:</b> Wednesday, January 14, "
        "2026 12:00 PM<br><b>To:</b> Reviewer Person &lt;reviewer@example.com&gt;<br><b>Subject:</b> [Review] "
        "Please review<o:p></o:p></p></div><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        "<p class=MsoNormal>Please review this content for brand compliance:<o:p></o:p></p>"
        "<p class=MsoNormal>&nbsp; approved<br>&nbsp; rejected<o:p></o:p></p></div></body></html>"
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


def mailgun_signature(signing_key: str = str(ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"])) -> dict[str, str]:
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


# --- every other ESP Anymail receives inbound mail from (anymail/urls.py), modelled on
# anymail/webhooks/<esp>.py: each builder takes the raw reply and returns what that ESP posts. ------


@dataclass
class InboundPost:
    url: str
    body: bytes | dict[str, str]
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: Client, *, auth: str | None = BASIC_AUTH) -> Any:
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in self.headers.items()}
        if auth:
            extra["HTTP_AUTHORIZATION"] = auth
        if isinstance(self.body, dict):
            return client.post(self.url, data=self.body, **extra)
        return client.post(self.url, data=self.body, content_type=self.content_type, **extra)


def _message_headers(raw: bytes) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in message_from_bytes(raw).items()]


def _text_of(raw: bytes) -> str:
    part = message_from_bytes(raw, policy=policy.default).get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""  # type: ignore[attr-defined]


def amazon_ses(raw: bytes, sender: str, to: str) -> InboundPost:
    """An SNS Notification of an SES receipt rule with an SNS action (the message inline, base64)."""
    ses_event = {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-01-14T12:05:00.000Z",
            "source": sender,
            "messageId": uuid.uuid4().hex,
            "destination": [to],
            "headersTruncated": False,
            "commonHeaders": {"from": [sender], "to": [to], "subject": "Re: [Review] Please review"},
        },
        "receipt": {
            "timestamp": "2026-01-14T12:05:00.000Z",
            "recipients": [to],
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "action": {
                "type": "SNS",
                "topicArn": "arn:aws:sns:us-east-1:123456789012:hitl-inbound",
                "encoding": "BASE64",
            },
        },
        "content": base64.b64encode(raw).decode(),
    }
    message_id = str(uuid.uuid4())
    sns = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:hitl-inbound",
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-01-14T12:05:01.000Z",
        "SignatureVersion": "1",
        "Signature": base64.b64encode(b"not verified by Anymail").decode(),
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": message_id,
        "x-amz-sns-topic-arn": sns["TopicArn"],
    }
    return InboundPost("/anymail/amazon_ses/inbound/", json.dumps(sns).encode(), "text/plain; charset=UTF-8", headers)


def amazon_ses_s3(bucket: str, key: str, sender: str, to: str) -> InboundPost:
    """The same SES notification for a receipt rule with an S3 action: the message is in the bucket."""
    post = amazon_ses(b"", sender, to)
    sns = json.loads(post.body)  # type: ignore[arg-type]
    ses_event = json.loads(sns["Message"])
    ses_event.pop("content")
    ses_event["receipt"]["action"] = {
        "type": "S3",
        "topicArn": sns["TopicArn"],
        "bucketName": bucket,
        "objectKeyPrefix": "",
        "objectKey": key,
    }
    sns["Message"] = json.dumps(ses_event)
    post.body = json.dumps(sns).encode()
    return post


def amazon_sns_subscription_confirmation(topic_arn: str) -> InboundPost:
    """What SNS posts first when the URL is subscribed to the topic; Anymail confirms it through SNS."""
    message_id, token = str(uuid.uuid4()), uuid.uuid4().hex * 4
    region = topic_arn.split(":")[3]
    sns = {
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": f"You have chosen to subscribe to the topic {topic_arn}.",
        "SubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}"
        f"&Token={token}",
        "Timestamp": "2026-01-14T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": base64.b64encode(b"not verified by Anymail").decode(),
        "SigningCertURL": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-0000.pem",
    }
    headers = {
        "x-amz-sns-message-type": "SubscriptionConfirmation",
        "x-amz-sns-message-id": message_id,
        "x-amz-sns-topic-arn": topic_arn,
    }
    return InboundPost("/anymail/amazon_ses/inbound/", json.dumps(sns).encode(), "text/plain; charset=UTF-8", headers)


def brevo(raw: bytes, sender: str, to: str, *, url: str = "/anymail/brevo/inbound/") -> InboundPost:
    """Brevo's inbound parse webhook: {"items": [...]}, headers as a dict, the text and HTML bodies."""
    headers: dict[str, Any] = {}
    for name, value in _message_headers(raw):
        headers[name] = (
            value
            if name not in headers
            else [*([headers[name]] if isinstance(headers[name], str) else headers[name]), value]
        )
    headers.setdefault("Delivered-To", to)
    item = {
        "Uuid": [str(uuid.uuid4())],
        "MessageId": headers.get("Message-ID", ""),
        "InReplyTo": None,
        "From": {"Name": "Reviewer Person", "Address": sender},
        "To": [{"Name": None, "Address": to}],
        "Subject": "Re: [Review] Please review",
        "Headers": headers,
        "SpamScore": 0.1,
        "ExtractedMarkdownMessage": _text_of(raw),
        "RawTextBody": _text_of(raw),
        "RawHtmlBody": "",
        "Attachments": [],
    }
    return InboundPost(url, json.dumps({"items": [item]}).encode())


def mailersend(raw: bytes, sender: str, to: str, *, secret: str) -> InboundPost:
    """MailerSend's inbound route webhook, signed (HMAC-SHA256 of the body, hex, in `Signature`)."""
    body = json.dumps(
        {
            "type": "inbound.message",
            "inbound_id": "inb_" + uuid.uuid4().hex[:12],
            "data": {
                "object": "message",
                "id": uuid.uuid4().hex,
                "created_at": "2026-01-14T12:05:00.000000Z",
                "raw": raw.decode(),
                "sender": {"email": sender},
                "recipients": {"rcptTo": [{"email": to}], "to": {"raw": to, "data": [{"email": to, "name": ""}]}},
                "from": {"email": sender, "name": "Reviewer Person", "raw": f"Reviewer Person <{sender}>"},
                "subject": "Re: [Review] Please review",
                "text": _text_of(raw),
                "html": "",
                "attachments": [],
            },
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return InboundPost("/anymail/mailersend/inbound/", body, headers={"Signature": signature})


def mailjet(raw: bytes, sender: str, to: str) -> InboundPost:
    """Mailjet's Parse API: headers as a dict, Text-part/Html-part, no raw message."""
    headers: dict[str, Any] = {}
    for name, value in _message_headers(raw):
        headers[name] = value
    event = {
        "Sender": sender,
        "Recipient": to,
        "Date": "20260114T120500",
        "From": f"Reviewer Person <{sender}>",
        "Subject": "Re: [Review] Please review",
        "Headers": headers,
        "Parts": [{"Headers": {"Content-Type": 'text/plain; charset="utf-8"'}, "ContentRef": "Text-part"}],
        "Text-part": _text_of(raw),
        "SpamAssassinScore": "0.1",
        "CustomID": "",
        "Payload": "",
    }
    return InboundPost("/anymail/mailjet/inbound/", json.dumps(event).encode())


def mailtrap(inbox_id: int, message_id: str, *, secret: str) -> InboundPost:
    """Mailtrap's inbound notification names the message; Anymail fetches it from Mailtrap's API."""
    body = json.dumps(
        {
            "events": [
                {
                    "event": "inbound.message_received",
                    "event_id": str(uuid.uuid4()),
                    "timestamp": int(time.time() * 1000),
                    "inbox_id": inbox_id,
                    "message_id": message_id,
                }
            ]
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return InboundPost("/anymail/mailtrap/inbound/", body, headers={"Mailtrap-Signature": signature})


def mandrill(raw: bytes, sender: str, to: str, *, key: str, url: str) -> InboundPost:
    """Mandrill's combined webhook: form field `mandrill_events`, signed over the URL and the fields."""
    events = [
        {
            "event": "inbound",
            "ts": int(time.time()),
            "msg": {
                "raw_msg": raw.decode(),
                "email": to,
                "from_email": sender,
                "from_name": "Reviewer Person",
                "subject": "Re: [Review] Please review",
                "text": _text_of(raw),
                "spam_report": {"score": 0.1, "matched_rules": []},
            },
        }
    ]
    fields = {"mandrill_events": json.dumps(events)}
    signed = url + "".join(k + fields[k] for k in sorted(fields))
    signature = base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    return InboundPost("/anymail/mandrill/", fields, headers={"X-Mandrill-Signature": signature})


def postal(raw: bytes, sender: str, to: str, *, private_key: Any) -> InboundPost:
    """Postal's HTTP endpoint in "raw message" mode, signed with the server's RSA key (SHA-1)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    body = json.dumps(
        {
            "id": int(time.time()),
            "rcpt_to": to,
            "mail_from": sender,
            "token": uuid.uuid4().hex[:12],
            "message": base64.b64encode(raw).decode(),
            "base64": True,
            "size": str(len(raw)),
        }
    ).encode()
    signature = base64.b64encode(private_key.sign(body, padding.PKCS1v15(), hashes.SHA1())).decode()  # noqa: S303
    return InboundPost("/anymail/postal/inbound/", body, headers={"X-Postal-Signature": signature})


def postal_public_key(private_key: Any) -> str:
    """The key as Postal shows it (and POSTAL_WEBHOOK_KEY takes it): the PEM body on one line."""
    from cryptography.hazmat.primitives import serialization

    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "".join(pem.decode().strip().splitlines()[1:-1])


def resend(email_id: str, *, secret: str) -> InboundPost:
    """Resend's `email.received` event (Svix-signed); Anymail fetches the message from Resend's API."""
    from datetime import UTC, datetime

    from svix.webhooks import Webhook as SvixWebhook

    body = json.dumps(
        {
            "type": "email.received",
            "created_at": "2026-01-14T12:05:00.000Z",
            "data": {"email_id": email_id, "created_at": "2026-01-14T12:05:00.000Z", "subject": "Re: …"},
        }
    )
    msg_id, now = "msg_" + uuid.uuid4().hex, datetime.now(tz=UTC)
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": SvixWebhook(secret).sign(msg_id, now, body),
    }
    return InboundPost("/anymail/resend/inbound/", body.encode(), headers=headers)


def sparkpost(raw: bytes, sender: str, to: str) -> InboundPost:
    """SparkPost's inbound relay webhook: a batch of `relay_message` events with the RFC 822 text."""
    event = {
        "msys": {
            "relay_message": {
                "content": {
                    "email_rfc822": base64.b64encode(raw).decode(),
                    "email_rfc822_is_base64": True,
                    "headers": [],
                    "html": "",
                    "subject": "Re: [Review] Please review",
                    "text": _text_of(raw),
                    "to": [to],
                },
                "customer_id": "12345",
                "friendly_from": sender,
                "msg_from": sender,
                "rcpt_to": to,
                "webhook_id": "1234567890",
                "protocol": "smtp",
            }
        }
    }
    return InboundPost("/anymail/sparkpost/inbound/", json.dumps([event]).encode())
