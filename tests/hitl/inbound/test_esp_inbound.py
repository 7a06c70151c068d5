"""Every ESP Anymail receives inbound mail from (anymail/urls.py of the installed Anymail): its real
payload, signed where the ESP signs, posted to the real Anymail URL, answers the request (issue 13).

Postmark, Mailgun and SendGrid are covered in tests/hitl/channels/test_email_channel.py; here the rest.
Where Anymail fetches the message (Resend, Mailtrap, SES's S3 action) or confirms a subscription (SNS),
it talks to a stand-in for the ESP's API on 127.0.0.1 through its real client (requests, boto3). Not
here, because it cannot run offline: AWS itself and KMS-encrypted S3 objects. Anymail does not check SNS
signatures at all, so there is nothing to test there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from anymail import urls as anymail_urls
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core import mail
from django.test import Client

from hitl.models import HITLRequest, InboundEmail
from tests.support import esp_payloads as esp
from tests.support.base import World
from tests.support.esp_api import fake_esp_api

pytestmark = pytest.mark.django_db

REVIEWER = "reviewer@example.com"
BODY = "Approved. Great article!\n\n" + esp.QUOTED_ORIGINAL
POSTAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MANDRILL_URL = "https://hitl.example.test/anymail/mandrill/"
# What a deployment sets as ANYMAIL_* environment variables (hitl/settings.py strips the prefix).
ESP_SETTINGS = {
    "BREVO_API_KEY": "xkeysib-test",
    "MAILERSEND_INBOUND_SECRET": "mailersend-inbound-secret",
    "MAILTRAP_API_TOKEN": "mailtrap-token",
    "MAILTRAP_INBOUND_SECRET": "mailtrap-inbound-secret",
    "MANDRILL_WEBHOOK_KEY": "mandrill-webhook-key",
    "MANDRILL_WEBHOOK_URL": MANDRILL_URL,
    "POSTAL_WEBHOOK_KEY": esp.postal_public_key(POSTAL_KEY),
    "RESEND_API_KEY": "re_test",
    "RESEND_INBOUND_SECRET": "whsec_" + "dGVzdC1yZXNlbmQtaW5ib3VuZC1zZWNyZXQ=",
}


@pytest.fixture
def esp_settings(settings: Any) -> dict[str, str]:
    settings.ANYMAIL = {**settings.ANYMAIL, **ESP_SETTINGS}
    return settings.ANYMAIL


def new_request(world: World) -> tuple[str, str]:
    mail.outbox.clear()
    created = world.create(assign_to=REVIEWER, emit_options=["approved", "rejected"])
    reply_to = mail.outbox[0].reply_to[0]
    mail.outbox.clear()
    return created["id"], reply_to


def assert_answered(request_id: str, esp_name: str) -> None:
    result = HITLRequest.objects.get(pk=request_id).resolution.result
    assert (result["outcome"], result["feedback"], result["source"]) == ("approved", "Great article!", "email")
    assert InboundEmail.objects.get().received_via == f"anymail:{esp_name}"
    assert len(mail.outbox) == 1 and "answer recorded" in mail.outbox[0].subject


Builder = Callable[[bytes, str, str], esp.InboundPost]
DIRECT: dict[str, tuple[str, Builder]] = {
    "amazon_ses": ("amazon ses", esp.amazon_ses),
    "brevo": ("brevo", esp.brevo),
    "mailersend": (
        "mailersend",
        lambda r, s, t: esp.mailersend(r, s, t, secret=ESP_SETTINGS["MAILERSEND_INBOUND_SECRET"]),
    ),
    "mailjet": ("mailjet", esp.mailjet),
    "mandrill": (
        "mandrill",
        lambda r, s, t: esp.mandrill(r, s, t, key=ESP_SETTINGS["MANDRILL_WEBHOOK_KEY"], url=MANDRILL_URL),
    ),
    "postal": ("postal", lambda r, s, t: esp.postal(r, s, t, private_key=POSTAL_KEY)),
    "sparkpost": ("sparkpost", esp.sparkpost),
}


class TestInboundPayloadOfEveryEsp:
    @pytest.mark.parametrize("name", list(DIRECT))
    def test_it_answers_the_request(self, world: World, esp_settings: dict, name: str) -> None:
        esp_name, build = DIRECT[name]
        request_id, reply_to = new_request(world)
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY)
        response = build(raw, REVIEWER, reply_to).send(Client())
        assert response.status_code == 200, response.content
        assert_answered(request_id, esp_name)

    def test_amazon_ses_with_an_s3_action_downloads_the_message_with_boto3(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        request_id, reply_to = new_request(world)
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY)
        with fake_esp_api() as api:
            # boto3 reads its credentials and (since 1.28) per-service endpoints from the environment.
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
            monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", api.url.rstrip("/"))
            api.raw("/hitl-inbound/replies/abc.eml", raw)
            response = esp.amazon_ses_s3("hitl-inbound", "replies/abc.eml", REVIEWER, reply_to).send(Client())
        assert response.status_code == 200, response.content
        assert api.seen[0][0] == "/hitl-inbound/replies/abc.eml" and api.seen[0][1].startswith("AWS4-HMAC-SHA256")
        assert_answered(request_id, "amazon ses")

    def test_amazon_ses_confirms_the_sns_subscription_through_sns(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        topic = "arn:aws:sns:eu-west-1:123456789012:hitl-inbound"
        with fake_esp_api() as api:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
            monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", api.url.rstrip("/"))
            api.xml(
                "/",
                '<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
                f"<ConfirmSubscriptionResult><SubscriptionArn>{topic}:1</SubscriptionArn>"
                "</ConfirmSubscriptionResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>"
                "</ConfirmSubscriptionResponse>",
            )
            post = esp.amazon_sns_subscription_confirmation(topic)
            response = post.send(Client())
        assert response.status_code == 200, response.content
        token = json.loads(post.body)["Token"]  # type: ignore[arg-type]
        assert [p for p, _ in api.posted] == ["/"]
        assert b"Action=ConfirmSubscription" in api.posted[0][1] and token.encode() in api.posted[0][1]
        assert InboundEmail.objects.count() == 0

    def test_resend_fetches_the_message_from_resends_api(self, world: World, esp_settings: dict, settings) -> None:
        request_id, reply_to = new_request(world)
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY)
        with fake_esp_api() as api:
            settings.ANYMAIL = {**esp_settings, "RESEND_API_URL": api.url}
            api.json("/emails/receiving/em_1", {"id": "em_1", "raw": {"download_url": f"{api.url}raw/em_1"}})
            api.raw("/raw/em_1", raw)
            response = esp.resend("em_1", secret=ESP_SETTINGS["RESEND_INBOUND_SECRET"]).send(Client())
        assert response.status_code == 200, response.content
        assert api.seen[0] == ("/emails/receiving/em_1", "Bearer re_test")
        assert_answered(request_id, "resend")

    def test_mailtrap_fetches_the_message_from_mailtraps_api(self, world: World, esp_settings: dict, settings) -> None:
        request_id, reply_to = new_request(world)
        raw = esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY)
        with fake_esp_api() as api:
            settings.ANYMAIL = {**esp_settings, "MAILTRAP_API_URL": api.url}
            api.json("/inbound/inboxes/42/messages/m1", {"id": "m1", "raw_message_url": f"{api.url}raw/m1"})
            api.raw("/raw/m1", raw)
            response = esp.mailtrap(42, "m1", secret=ESP_SETTINGS["MAILTRAP_INBOUND_SECRET"]).send(Client())
        assert response.status_code == 200, response.content
        assert api.seen[0] == ("/inbound/inboxes/42/messages/m1", "Bearer mailtrap-token")
        assert_answered(request_id, "mailtrap")

    def test_an_esps_sample_event_without_a_message_is_a_200_and_records_nothing(
        self, world: World, esp_settings: dict
    ) -> None:
        # Mailtrap's "Test your integration" sends inbox 1, which Anymail turns into no event at all.
        response = esp.mailtrap(1, "sample", secret=ESP_SETTINGS["MAILTRAP_INBOUND_SECRET"]).send(Client())
        assert response.status_code == 200, response.content
        assert InboundEmail.objects.count() == 0 and mail.outbox == []


class TestForgedPosts:
    """Where the ESP signs, a post with a wrong signature is refused (4xx) and changes nothing."""

    @pytest.mark.parametrize(
        ("name", "forge"),
        [
            ("mailersend", lambda post: post.headers.update(Signature="0" * 64)),
            ("mandrill", lambda post: post.headers.update({"X-Mandrill-Signature": "AAAA"})),
            ("postal", lambda post: post.headers.update({"X-Postal-Signature": "AAAA"})),
        ],
    )
    def test_a_wrong_signature_is_refused(self, world: World, esp_settings: dict, name: str, forge: Any) -> None:
        request_id, reply_to = new_request(world)
        post = DIRECT[name][1](esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY), REVIEWER, reply_to)
        forge(post)
        assert 400 <= post.send(Client()).status_code < 500
        assert HITLRequest.objects.get(pk=request_id).status == "pending" and InboundEmail.objects.count() == 0

    def test_a_wrong_resend_signature_is_refused(self, world: World, esp_settings: dict) -> None:
        post = esp.resend("em_1", secret="whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==")
        assert 400 <= post.send(Client()).status_code < 500

    @pytest.mark.parametrize("name", ["amazon_ses", "brevo", "mailjet", "sparkpost"])
    def test_the_unsigned_esps_need_the_webhook_secret(self, world: World, esp_settings: dict, name: str) -> None:
        request_id, reply_to = new_request(world)
        post = DIRECT[name][1](esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY), REVIEWER, reply_to)
        bad = "Basic " + __import__("base64").b64encode(b"esp-user:wrong").decode()
        assert 400 <= post.send(Client(), auth=bad).status_code < 500
        assert HITLRequest.objects.get(pk=request_id).status == "pending"

    def test_an_ses_post_whose_headers_do_not_match_its_body_is_refused(self, world: World) -> None:
        request_id, reply_to = new_request(world)
        post = esp.amazon_ses(esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY), REVIEWER, reply_to)
        post.headers["x-amz-sns-message-id"] = "another-id"
        assert 400 <= post.send(Client()).status_code < 500
        assert json.loads(post.body)["Type"] == "Notification"  # type: ignore[arg-type]
        assert HITLRequest.objects.get(pk=request_id).status == "pending"


class TestTheReadmeNamesEveryInboundEsp:
    """The README's inbound table lists every inbound URL the installed Anymail serves, and every
    setting these tests needed; the settings reach Anymail as ANYMAIL_* environment variables."""

    def readme(self) -> str:
        return (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")

    def test_every_inbound_url_of_anymail_is_in_the_readme(self) -> None:
        inbound = [
            str(p.pattern).lstrip("^").rstrip("$")
            for p in anymail_urls.urlpatterns
            if "inbound" in str(p.name) and "sendinblue" not in str(p.name)  # deprecated alias of brevo
        ] + ["mandrill/"]
        readme = self.readme()
        urls = {u.replace("(_mime)?", "") for u in inbound} | {"mailgun/inbound_mime/"}
        missing = [u for u in sorted(urls) if f"`/anymail/{u}`" not in readme]
        assert not missing, missing
        assert len(urls) >= 13

    def test_every_setting_the_esps_need_is_in_the_readme(self) -> None:
        readme = self.readme()
        missing = [k for k in ESP_SETTINGS if f"`ANYMAIL_{k}`" not in readme]
        assert not missing, missing

    def test_anymail_settings_come_from_the_environment(self) -> None:
        env = {
            **os.environ,
            "DEBUG": "1",
            "ANYMAIL_POSTAL_WEBHOOK_KEY": "MIIBIjAN",
            "ANYMAIL_BREVO_API_KEY": "k",
            "ANYMAIL_MAILERSEND_INBOUND_SECRET": "0123456789",
            "ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": "false",
            "ANYMAIL_AMAZON_SES_CLIENT_PARAMS": '{"region_name": "eu-west-1"}',
        }
        code = "import django; django.setup(); from django.conf import settings; print(settings.ANYMAIL)"
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code],
            env={**env, "DJANGO_SETTINGS_MODULE": "hitl.settings"},
            cwd=Path(__file__).resolve().parents[3],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "'POSTAL_WEBHOOK_KEY': 'MIIBIjAN'" in done.stdout and "'BREVO_API_KEY': 'k'" in done.stdout, done
        assert "'MAILERSEND_INBOUND_SECRET': '0123456789'" in done.stdout  # digits stay a string
        assert "'AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS': False" in done.stdout
        assert "'AMAZON_SES_CLIENT_PARAMS': {'region_name': 'eu-west-1'}" in done.stdout

    def test_a_missing_required_setting_is_a_500_as_the_readme_says(self, world: World) -> None:
        request_id, reply_to = new_request(world)
        post = esp.brevo(esp.raw_reply(sender=REVIEWER, to=reply_to, body=BODY), REVIEWER, reply_to)
        assert post.send(Client(raise_request_exception=False)).status_code == 500
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
