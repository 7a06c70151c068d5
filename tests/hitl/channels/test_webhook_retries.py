"""Webhook retries are scheduled for their own due time (not the minute sweep), and a 410 from the
receiver disables the webhook (Standard Webhooks), recorded, audited and shown in the admin."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from hitl.channels import webhook_outbox
from hitl.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.support.base import World, build_world
from tests.support.qcluster import QCluster
from tests.support.receiver import Receiver


def add_hook(world: World, receiver: Receiver, **kwargs: Any) -> Webhook:
    webhook, secret = webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test", **kwargs)
    receiver.secret = secret
    return webhook


class TestRetryTiming:
    def test_a_5_second_base_retries_about_5_seconds_later_on_a_real_worker(
        self, qcluster: QCluster, receiver: Receiver, settings: Any
    ) -> None:
        settings.HITL_WEBHOOK_RETRY_BASE = 5
        world = build_world()
        add_hook(world, receiver, max_retries=2)
        receiver.statuses = [503]
        qcluster.start()
        world.create()
        first, second = receiver.wait_for(2, timeout=25)[:2]
        gap = second.received_at - first.received_at
        assert 4 <= gap < 15, gap  # the sweep (not running here) would have taken a minute or never
        assert second.webhook_id == first.webhook_id
        deadline = time.monotonic() + 10
        while WebhookDelivery.objects.get().status != DeliveryStatus.DELIVERED and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker records the answer just after the receiver saw the request
        assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


@pytest.mark.django_db(transaction=True)
class TestGone:
    def test_a_410_disables_the_webhook_audits_it_and_the_admin_shows_why(
        self, world: World, receiver: Receiver
    ) -> None:
        webhook = add_hook(world, receiver)
        receiver.statuses = [410]
        world.create()
        webhook.refresh_from_db()
        assert webhook.active is False and "410 Gone" in webhook.disabled_reason
        assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED
        event = AuditEvent.objects.get(event_type="webhook.changed", actor="system")
        assert event.data["action"] == "webhook.disabled" and event.target_id == str(webhook.pk)
        world.create()  # nothing more is sent to a disabled webhook
        assert len(receiver.received) == 1

        ops = Client()
        ops.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
        listing = ops.get(reverse("admin:hitl_webhook_changelist")).content.decode()
        assert "410 Gone" in listing
        assert "410 Gone" in ops.get(reverse("admin:hitl_webhook_change", args=[webhook.pk])).content.decode()

    def test_other_client_errors_leave_it_active(self, world: World, receiver: Receiver) -> None:
        webhook = add_hook(world, receiver)
        receiver.statuses = [404]
        world.create()
        webhook.refresh_from_db()
        assert webhook.active is True and webhook.disabled_reason == ""
