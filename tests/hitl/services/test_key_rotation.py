"""Key rotation loses nothing (SPEC §17): what an old SECRET_KEY signed keeps working while it is in
SECRET_KEY_FALLBACKS, and the documented HITL_ENCRYPTION_KEYS order loses no webhook delivery."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

import pytest
from cryptography.fernet import Fernet
from django.core import mail
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from hitl.channels import telegram
from hitl.lib.links import magic_link_url
from hitl.models import DeliveryStatus, HITLRequest, WebhookDelivery
from hitl.services.sweep import sweep
from tests.hitl.channels.test_webhooks import add_hook, make_due
from tests.support import esp_payloads as esp
from tests.support.base import World
from tests.support.receiver import Receiver

OLD, NEW = "old-secret-key-" + "o" * 40, "new-secret-key-" + "n" * 40
REVIEWER = "reviewer@example.com"


@pytest.fixture
def old_key(settings: Any) -> Any:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD, []
    return settings


def rotate(settings: Any, *, keep_old: bool) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW, [OLD] if keep_old else []


class TestSecretKeyFallbacks:
    @pytest.mark.parametrize("keep_old", [True, False], ids=["fallback", "dropped"])
    def test_an_old_callback_url_works_until_the_key_is_dropped(
        self, world: World, old_key: Any, keep_old: bool
    ) -> None:
        path = urlparse(world.create()["callback_url"]).path
        rotate(old_key, keep_old=keep_old)
        response = APIClient().post(path, {"feedback": "approved"}, format="json")
        assert (response.status_code == 200) is keep_old, response.content

    @pytest.mark.parametrize("keep_old", [True, False], ids=["fallback", "dropped"])
    def test_an_old_magic_link_works_until_the_key_is_dropped(self, world: World, old_key: Any, keep_old: bool) -> None:
        request = HITLRequest.objects.get(pk=world.create(assign_to=REVIEWER)["id"])
        path = urlparse(magic_link_url(request)).path
        rotate(old_key, keep_old=keep_old)
        assert Client().get(path).status_code == (200 if keep_old else 404)
        # New links are signed with the new key.
        assert urlparse(magic_link_url(request)).path != path

    @pytest.mark.parametrize("keep_old", [True, False], ids=["fallback", "dropped"])
    def test_an_old_reply_address_works_until_the_key_is_dropped(
        self, world: World, old_key: Any, keep_old: bool
    ) -> None:
        mail.outbox.clear()
        created = world.create(assign_to=REVIEWER)
        reply_to = mail.outbox[0].reply_to[0]
        rotate(old_key, keep_old=keep_old)
        mail.outbox.clear()
        response = esp.reply(Client(), "mailgun", sender=REVIEWER, to=reply_to, body="approved\n")
        assert response.status_code == 200, response.content
        status = HITLRequest.objects.get(pk=created["id"]).status
        assert (status == "responded") is keep_old

    def test_the_old_telegram_webhook_secret_is_accepted_until_the_key_is_dropped(
        self, world: World, old_key: Any
    ) -> None:
        deployment = world.deployment.pk
        old_secret = telegram.webhook_secret(deployment)

        def post() -> int:
            return (
                Client()
                .post(
                    f"/telegram/{deployment}/webhook/",
                    json.dumps({"update_id": 1}),
                    content_type="application/json",
                    HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=old_secret,
                )
                .status_code
            )

        rotate(old_key, keep_old=True)
        assert post() == 200 and telegram.webhook_secret(deployment) != old_secret
        rotate(old_key, keep_old=False)
        assert post() == 403


@pytest.mark.django_db(transaction=True)
class TestEncryptionKeyRotation:
    def test_a_delivery_that_failed_for_a_missing_key_is_sent_once_the_key_is_there(
        self, world: World, receiver: Receiver, settings: Any
    ) -> None:
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        settings.HITL_ENCRYPTION_KEYS = [old]
        webhook = add_hook(world, receiver)
        # One process went ahead: the new key first, and the secrets re-encrypted under it...
        settings.HITL_ENCRYPTION_KEYS = [new, old]
        call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
        # ...while this one still runs with the old key alone.
        settings.HITL_ENCRYPTION_KEYS = [old]
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.PENDING and "not sent" in delivery.last_error
        assert delivery.retries_left == webhook.max_retries  # not the receiver's fault: no retry spent
        make_due()
        sweep()  # still no key: still pending, never abandoned
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.PENDING and delivery.retries_left == webhook.max_retries
        settings.HITL_ENCRYPTION_KEYS = [new, old]  # deployed here too
        make_due()
        sweep()
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED
        (received,) = receiver.wait_for(1)
        assert received.seed_ok and received.standard_ok

    def test_the_documented_order_loses_no_delivery(self, world: World, receiver: Receiver, settings: Any) -> None:
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        settings.HITL_ENCRYPTION_KEYS = [old]
        add_hook(world, receiver)
        # docs/operations.md: 1. add the new key second everywhere; 2. make it first everywhere;
        # 3. rotate_encryption_keys; 4. drop the old key. Two processes may be a step apart at any time.
        steps = [([old], [old, new]), ([old, new], [new, old]), ([new, old], [new, old]), ([new, old], [new])]
        sent = 0
        for index, (a, b) in enumerate(steps):
            if index == 3:
                call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
            for keys in (a, b):
                settings.HITL_ENCRYPTION_KEYS = keys
                world.create()
                sent += 1
        assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == sent
        assert len(receiver.wait_for(sent)) == sent
