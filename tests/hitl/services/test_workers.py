"""What only a real worker proves: a `manage.py qcluster` subprocess on the test database, with the ORM
broker on SQLite and the Redis broker when REDIS_URL is set (CI's PostgreSQL pass).

The cluster calls django-q2's scheduler every 30 s; `tick_schedule` runs that same scheduler for the
minute sweep's Schedule row instead of waiting, so the sweep still travels Schedule → broker → worker.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import verify_chain
from hitl.channels.webhook_outbox import create_webhook
from hitl.models import DeliveryStatus, HITLRequest, Resolution, WebhookDelivery
from hitl.schedules import SWEEP_NAME
from tests.support.base import build_world
from tests.support.qcluster import QCluster, tick_schedule
from tests.support.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


class TestDeadlineOnARealWorker:
    def test_a_2_second_timeout_auto_responds_exactly_once_and_survives_a_restart(self, qcluster: QCluster) -> None:
        world = build_world()
        qcluster.start()
        created = world.create(timeout=2, default_outcome="approved")
        rid = created["id"]
        request = HITLRequest.objects.get(pk=rid)
        assert request.due_at is not None

        # A sweep before the deadline leaves it alone (never early).
        assert tick_schedule(SWEEP_NAME).startswith("expired=0")
        assert HITLRequest.objects.get(pk=rid).status == "pending"

        while timezone.now() < request.due_at:
            time.sleep(0.1)
        assert tick_schedule(SWEEP_NAME).startswith("expired=1")
        request.refresh_from_db()
        assert request.status == "auto_responded"
        assert request.resolved_at is not None and request.resolved_at >= request.due_at
        resolution = Resolution.objects.get(pk=rid)
        assert (resolution.outcome, resolution.source, resolution.responder) == ("approved", "auto", "system")

        # Killed without warning and started again: nothing fires a second time.
        qcluster.kill()
        qcluster.start()
        assert tick_schedule(SWEEP_NAME).startswith("expired=0")
        assert HITLRequest.objects.get(pk=rid).status == "auto_responded"
        assert Resolution.objects.filter(pk=rid).count() == 1
        assert AuditEvent.objects.filter(target_id=rid, event_type="request.auto_responded").count() == 1
        assert Resolution.objects.get(pk=rid).created_at == resolution.created_at
        assert verify_chain()[1] is None


class TestWebhookOnARealWorker:
    def test_a_worker_killed_mid_delivery_delivers_after_a_restart(
        self, qcluster: QCluster, receiver: Receiver, settings: Any
    ) -> None:
        # A short attempt budget keeps the lease (budget + margin) short: the delivery counts as
        # abandoned a few seconds after its worker died.
        settings.HITL_WEBHOOK_TIMEOUT = 4
        world = build_world()
        webhook, receiver.secret = create_webhook(world.deployment, url=receiver.url, actor="test")
        receiver.hold = 1  # the first delivery hangs until the test releases it
        qcluster.start()

        rid = world.create()["id"]
        assert receiver.arrived.wait(timeout=30), qcluster.log()
        qcluster.kill()  # mid-delivery: the receiver has the request, the worker never sees an answer
        receiver.release.set()
        delivery = WebhookDelivery.objects.get(request_id=rid)
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts.count() == 0

        qcluster.start()
        deadline = time.monotonic() + 40
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            tick_schedule(SWEEP_NAME)  # re-enqueues the delivery once its lease has expired
            time.sleep(0.5)
        first, second = receiver.wait_for(2, timeout=5)
        assert first.webhook_id == second.webhook_id and first.body == second.body
        assert first.seed_ok and first.standard_ok and second.seed_ok and second.standard_ok
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.DELIVERED
        assert delivery.attempt_count == 2
        abandoned, delivered = delivery.attempts.order_by("number")
        assert abandoned.status_code is None and "worker stopped" in abandoned.error
        assert delivered.status_code == 200
        assert AuditEvent.objects.filter(target_id=rid, event_type="webhook.delivered").count() == 1
