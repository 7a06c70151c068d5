"""Outbound webhooks (SPEC §6): payloads, both signatures, retries, redelivery, secrets at rest."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from hitl.channels import webhook_outbox
from hitl.lib import crypto
from hitl.models import DeliveryStatus, Webhook, WebhookDelivery
from hitl.services.sweep import sweep
from hitl_client import verify_signature
from tests.support.base import World
from tests.support.receiver import Receiver


def add_hook(world: World, receiver: Receiver, **kwargs: Any) -> Webhook:
    webhook, secret = webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test", **kwargs)
    receiver.secret = secret
    return webhook


def wait_of(delivery: WebhookDelivery) -> int:
    """Seconds from the start of the delivery's last attempt to its next one."""
    last = delivery.attempts.order_by("-number").first()
    assert last is not None and delivery.next_attempt_at is not None
    return round((delivery.next_attempt_at - last.started_at).total_seconds())


def make_due(now: Any = None) -> None:
    """Time passes: every pending delivery's backoff is over."""
    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).update(
        next_attempt_at=(now or timezone.now()) - timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
class TestPayloads:
    def test_it_sends_new_request_exactly_in_the_seed_shape(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        created = world.create(
            flow_id="flow_abc123",
            method_name="review_article",
            message="Please review this article for publication.",
            emit_options=["approved", "rejected", "request_changes"],
            state={"article_id": 12345, "author": "john@example.com", "category": "technology"},
            assign_to="reviewer@company.com",
        )
        (delivery,) = receiver.wait_for(1)
        payload = delivery.payload
        assert list(payload) == ["event", "request", "deployment", "callback_url", "assigned_to_email"]
        assert payload["event"] == "new_request"
        assert payload["request"] == {
            "id": created["id"],
            "flow_id": "flow_abc123",
            "method_name": "review_article",
            "message": "Please review this article for publication.",
            "emit_options": ["approved", "rejected", "request_changes"],
            "state": {"article_id": 12345, "author": "john@example.com", "category": "technology"},
            "metadata": {},
            "created_at": created["created_at"],
        }
        assert payload["deployment"] == {
            "id": world.deployment.pk,
            "name": "Content Review",
            "organization_id": world.deployment.organization_id,
        }
        assert payload["callback_url"] == created["callback_url"]
        assert payload["assigned_to_email"] == "reviewer@company.com"
        assert delivery.method == "POST" and delivery.path == "/hooks/hitl"
        assert delivery.headers["content-type"] == "application/json"

    def test_it_sends_the_result_when_a_request_resolves(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        created = world.create(metadata={"ticket": 7})
        world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"feedback": "Approved. Nice."}, format="json"
        )
        _, resolved = receiver.wait_for(2)
        payload = resolved.payload
        assert payload["event"] == "request_responded"
        assert payload["request"]["id"] == created["id"]
        assert payload["request"]["status"] == "responded"
        result = world.client_for("key").get(f"/api/v1/requests/{created['id']}/result/").json()
        assert payload["result"] == {key: value for key, value in result.items() if key != "status"}
        assert payload["result"]["outcome"] == "approved"
        assert payload["result"]["metadata"]["ticket"] == 7

    def test_it_sends_cancellations_and_respects_the_event_filter(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver, events=["request_cancelled"])
        created = world.create()
        world.client_for("key").post(f"/api/v1/requests/{created['id']}/cancel/", {}, format="json")
        (only,) = receiver.wait_for(1)
        assert only.payload["event"] == "request_cancelled"
        assert only.payload["request"]["status"] == "cancelled"

    def test_it_sends_nothing_to_inactive_webhooks_or_other_deployments(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver, active=False)
        webhook_outbox.create_webhook(world.other, url=receiver.url, actor="test")
        world.create()
        assert WebhookDelivery.objects.count() == 0
        assert receiver.received == []


@pytest.mark.django_db(transaction=True)
class TestSignatures:
    def test_every_delivery_verifies_with_the_seed_snippet_and_standardwebhooks(
        self, world: World, receiver: Receiver
    ) -> None:
        add_hook(world, receiver)
        created = world.create(message="Ünïcode — “quotes” ✓", state={"emoji": "🎉"})
        world.client_for("key").post(
            f"/api/v1/requests/{created['id']}/respond/", {"outcome": "rejected"}, format="json"
        )
        received = receiver.wait_for(2)
        for delivery in received:
            assert delivery.seed_ok, delivery.headers
            assert delivery.standard_ok, delivery.headers
            assert delivery.headers["x-signature"].startswith("sha256=")
            assert delivery.headers["webhook-signature"].startswith("v1,")
            assert delivery.headers["x-timestamp"] == delivery.headers["webhook-timestamp"]
            assert delivery.webhook_id.startswith("msg_")
        assert received[0].webhook_id != received[1].webhook_id
        assert receiver.secret.startswith("whsec_")
        # The shipped Python client's checker agrees.
        assert all(verify_signature(receiver.secret, d.body, d.headers) for d in received)

    def test_a_wrong_secret_does_not_verify(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        receiver.secret = webhook_outbox.generate_secret()
        world.create()
        (delivery,) = receiver.wait_for(1)
        assert not delivery.seed_ok and not delivery.standard_ok

    def test_rotating_the_secret_signs_later_attempts_with_the_new_one(self, world: World, receiver: Receiver) -> None:
        webhook = add_hook(world, receiver)
        old = receiver.secret
        receiver.statuses = [500]
        world.create()
        receiver.wait_for(1)
        new = webhook_outbox.rotate_webhook_secret(webhook.pk, actor="admin")
        assert new != old
        receiver.secret = new
        make_due()
        sweep()
        first, retry = receiver.wait_for(2)
        assert retry.webhook_id == first.webhook_id
        assert retry.seed_ok and retry.standard_ok
        assert AuditEvent.objects.filter(event_type="webhook.changed", data__action="secret_rotated").count() == 1


@pytest.mark.django_db(transaction=True)
class TestRetries:
    def test_it_retries_500_500_then_delivers_with_the_same_webhook_id(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        receiver.statuses = [500, 500, 200]
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.PENDING
        first_due = wait_of(delivery)
        for _ in range(2):
            make_due()
            assert sweep().deliveries == 1
        received = receiver.wait_for(3)
        assert [r.answered for r in received] == [500, 500, 200]
        assert len({r.webhook_id for r in received}) == 1
        assert len({r.body for r in received}) == 1
        assert all(r.seed_ok and r.standard_ok for r in received)
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED
        attempts = list(delivery.attempts.order_by("number"))
        assert [(a.number, a.status_code, a.will_retry) for a in attempts] == [
            (1, 500, True),
            (2, 500, True),
            (3, 200, False),
        ]
        assert attempts[0].error == "HTTP 500" and attempts[0].response_excerpt == "answered 500"
        assert first_due == 60
        assert AuditEvent.objects.filter(event_type="webhook.delivered").count() == 1
        assert AuditEvent.objects.filter(event_type="webhook.failed").count() == 0

    def test_the_backoff_doubles(self, settings: Any) -> None:
        settings.HITL_WEBHOOK_RETRY_BASE = 60
        assert [webhook_outbox.backoff_seconds(n) for n in range(5)] == [60, 120, 240, 480, 960]
        assert webhook_outbox.backoff_seconds(40) == 24 * 3600

    def test_each_retry_waits_longer(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver, max_retries=3)
        receiver.statuses = [503, 503, 503, 503]
        world.create()
        waits = []
        for _ in range(3):
            waits.append(wait_of(WebhookDelivery.objects.get()))
            make_due()
            sweep()
        assert waits == [60, 120, 240]
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.FAILED
        assert delivery.attempts.count() == 4
        assert AuditEvent.objects.filter(event_type="webhook.failed").count() == 1

    def test_zero_retries_is_the_seeds_behaviour(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver, max_retries=0)
        receiver.statuses = [500]
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.FAILED
        assert delivery.last_status_code == 500
        make_due()
        assert sweep().deliveries == 0
        assert len(receiver.received) == 1
        failed = AuditEvent.objects.get(event_type="webhook.failed")
        assert failed.data["status_code"] == 500 and failed.data["message_id"] == delivery.message_id

    @pytest.mark.parametrize("status", [400, 404, 410])
    def test_client_errors_are_not_retried(self, world: World, receiver: Receiver, status: int) -> None:
        add_hook(world, receiver)
        receiver.statuses = [status]
        world.create()
        assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED

    def test_429_and_connection_errors_are_retried(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        receiver.statuses = [429]
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 429
        # Nothing listens on port 9 of 127.0.0.1 (discard): connection refused.
        Webhook.objects.update(url="http://127.0.0.1:9/closed")
        make_due()
        sweep()
        delivery.refresh_from_db()
        last = delivery.attempts.order_by("-number").first()
        assert last is not None and last.status_code is None and "cannot connect" in last.error
        assert delivery.status == DeliveryStatus.PENDING and delivery.retries_left == 3

    def test_a_duplicate_task_does_nothing(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert webhook_outbox.attempt_delivery(delivery.pk) is None
        assert len(receiver.received) == 1

    def test_redeliver_sends_the_same_message_again(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.DELIVERED
        assert webhook_outbox.redeliver(delivery.pk, actor="manager") is True
        first, again = receiver.wait_for(2)
        assert first.webhook_id == again.webhook_id and first.body == again.body
        assert again.seed_ok and again.standard_ok
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempt_count == 2
        assert AuditEvent.objects.filter(event_type="webhook.redelivery", actor="manager").count() == 1


class WorkerDied(BaseException):
    """Stands for SIGKILL: nothing in the attempt gets to record an outcome."""


@pytest.mark.django_db(transaction=True)
class TestAbandonedAttempts:
    def die_mid_attempt(self, world: World, monkeypatch: pytest.MonkeyPatch) -> WebhookDelivery:
        from hitl.lib import http

        monkeypatch.setattr(webhook_outbox, "enqueue_deliveries", lambda ids: None)  # staged, not sent yet
        world.create()
        delivery = WebhookDelivery.objects.get()

        def killed(*args: Any, **kwargs: Any) -> None:
            raise WorkerDied

        with monkeypatch.context() as patch:
            patch.setattr(http, "post_json", killed)
            with pytest.raises(WorkerDied):
                webhook_outbox.attempt_delivery(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.attempt_count == 1 and delivery.attempts.count() == 0
        assert delivery.next_attempt_at is not None and delivery.next_attempt_at > timezone.now()
        assert sweep().deliveries == 0  # leased: nobody else tries while the attempt may still run
        make_due()  # the lease runs out
        return delivery

    def test_the_next_attempt_logs_the_abandoned_one_and_sends(
        self, world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        add_hook(world, receiver)
        delivery = self.die_mid_attempt(world, monkeypatch)
        assert sweep().deliveries == 1
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED
        abandoned, sent = delivery.attempts.order_by("number")
        assert (abandoned.number, abandoned.status_code, abandoned.will_retry) == (1, None, True)
        assert "worker stopped" in abandoned.error
        assert (sent.number, sent.status_code) == (2, 200)
        assert delivery.retries_left == Webhook.objects.get().max_retries - 1
        (got,) = receiver.received
        assert got.webhook_id == delivery.message_id and got.seed_ok and got.standard_ok

    def test_with_no_retries_left_it_fails_without_sending(
        self, world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        add_hook(world, receiver, max_retries=0)
        delivery = self.die_mid_attempt(world, monkeypatch)
        sweep()
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.FAILED and "worker stopped" in delivery.last_error
        assert receiver.received == []
        assert AuditEvent.objects.filter(event_type="webhook.failed").count() == 1


@pytest.mark.django_db(transaction=True)
class TestEgressFromWebhooks:
    def test_a_url_resolving_to_a_private_address_is_refused_and_not_retried(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from hitl.lib import http

        monkeypatch.setattr(http, "resolve", lambda host, port: ["10.0.0.7"])
        webhook_outbox.create_webhook(world.deployment, url="https://hooks.partner.example/in", actor="test")
        world.create()
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.FAILED
        assert "resolves to 10.0.0.7, which is not a public address" in delivery.last_error
        (attempt,) = delivery.attempts.all()
        assert attempt.status_code is None and not attempt.will_retry
        assert AuditEvent.objects.filter(event_type="webhook.failed").count() == 1


@pytest.mark.django_db(transaction=True)
class TestSecretsAtRest:
    def test_secrets_are_not_readable_in_a_database_dump(self, world: World, receiver: Receiver) -> None:
        add_hook(world, receiver)
        secret = receiver.secret
        world.create()
        dump = io.StringIO()
        call_command("dumpdata", stdout=dump)
        assert secret not in dump.getvalue()
        assert secret.removeprefix("whsec_") not in dump.getvalue()
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret_encrypted FROM hitl_webhook")
            (stored,) = cursor.fetchone()
        assert secret not in stored and stored.startswith("gAAAAA")  # a Fernet token

    def test_rotating_encryption_keys_keeps_deliveries_verifiable(
        self, world: World, receiver: Receiver, settings: Any
    ) -> None:
        from cryptography.fernet import Fernet

        webhook = add_hook(world, receiver)
        old_token = Webhook.objects.get().secret_encrypted
        new_key = Fernet.generate_key().decode()
        settings.HITL_ENCRYPTION_KEYS = [new_key, *settings.HITL_ENCRYPTION_KEYS]
        out = io.StringIO()
        call_command("rotate_encryption_keys", stdout=out)
        assert out.getvalue().strip().splitlines()[-1] == "1"
        webhook.refresh_from_db()
        assert webhook.secret_encrypted != old_token
        # Only the new key is needed from now on.
        settings.HITL_ENCRYPTION_KEYS = [new_key]
        assert webhook.signing_secret() == receiver.secret
        world.create()
        (delivery,) = receiver.wait_for(1)
        assert delivery.seed_ok and delivery.standard_ok
        # A second run finds nothing left to do.
        call_command("rotate_encryption_keys", stdout=out)
        assert out.getvalue().strip().splitlines()[-1] == "0"

    def test_a_missing_key_is_a_clear_error(self, world: World, receiver: Receiver, settings: Any) -> None:
        from cryptography.fernet import Fernet
        from django.core.management.base import CommandError

        add_hook(world, receiver)
        settings.HITL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
        with pytest.raises(CommandError, match="hitl.Webhook #"):
            call_command("rotate_encryption_keys", stdout=io.StringIO())
        world.create()
        delivery = WebhookDelivery.objects.get()
        # Kept pending (retried until a process has the key: tests/hitl/services/test_key_rotation.py).
        assert delivery.status == DeliveryStatus.PENDING and "no key" in delivery.last_error
        assert receiver.received == []

    def test_debug_without_keys_derives_one_from_secret_key(self, settings: Any) -> None:
        settings.HITL_ENCRYPTION_KEYS = []
        settings.DEBUG = True
        token = crypto.encrypt("whsec_abc")
        assert crypto.decrypt(token) == "whsec_abc"
        settings.DEBUG = False
        from django.core.exceptions import ImproperlyConfigured

        with pytest.raises(ImproperlyConfigured, match="HITL_ENCRYPTION_KEYS"):
            crypto.decrypt(token)


@pytest.mark.django_db
class TestAddWebhookCommand:
    def test_it_prints_the_id_then_the_secret_on_the_last_line(self, world: World, settings: Any) -> None:
        out = io.StringIO()
        call_command(
            "add_webhook", "--deployment", str(world.deployment.pk), "--url", "https://hooks.example.com/x", stdout=out
        )
        lines = out.getvalue().strip().splitlines()
        webhook = Webhook.objects.get(pk=int(lines[-2]))
        assert lines[-1].startswith("whsec_") and webhook.signing_secret() == lines[-1]
        assert webhook.url == "https://hooks.example.com/x" and webhook.active and webhook.events == []
        assert webhook.max_retries == settings.HITL_WEBHOOK_MAX_RETRIES
        event = AuditEvent.objects.get(event_type="webhook.changed")
        assert event.actor == "cli" and lines[-1] not in json.dumps(event.data)

    @pytest.mark.parametrize(
        "url",
        ["http://hooks.example.com/x", "https://10.0.0.1/x", "https://[::1]/x", "ftp://example.com/", "not a url"],
    )
    def test_it_refuses_urls_the_egress_rules_refuse(self, world: World, url: str) -> None:
        from django.core.management.base import CommandError

        with pytest.raises(CommandError):
            call_command("add_webhook", "--deployment", str(world.deployment.pk), "--url", url, stdout=io.StringIO())
        assert not Webhook.objects.exists()
