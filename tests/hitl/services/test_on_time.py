"""On time (issue 21): with `hitl worker` running, a deadline, a reminder and a webhook retry happen
within 5 s of their time — the worker's ticker (HITL_TICK_SECONDS, 2 s by default) finds due work without
a schedule row per request; one pass at a time across workers, and a due webhook retry is queued once
however often the ticker runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from hitl.channels import outbox, webhook_outbox
from hitl.models import DeliveryStatus, HITLRequest, Resolution, WebhookDelivery
from hitl.services import sweep
from tests.support.base import World, build_world
from tests.support.qcluster import QCluster, wait_until
from tests.support.receiver import Receiver

PROMISE = timedelta(seconds=5)


class TestOnARealWorker:
    def test_a_deadline_and_a_reminder_fire_within_5_seconds_of_their_time(self, qcluster: QCluster) -> None:
        world = build_world()
        qcluster.start()
        timed = world.create(on_timeout="default", default_outcome="approved")
        reminded = world.create()
        due = timezone.now() + timedelta(seconds=2)
        HITLRequest.objects.filter(pk=timed["id"]).update(due_at=due)
        HITLRequest.objects.filter(pk=reminded["id"]).update(reminder_due_at=due)
        resolution = wait_until(lambda: Resolution.objects.filter(request_id=timed["id"]).first())
        assert resolution.status == "auto_responded"
        assert timedelta(0) <= resolution.created_at - due < PROMISE, resolution.created_at - due
        sent = wait_until(lambda: HITLRequest.objects.get(pk=reminded["id"]).reminder_sent_at)
        assert timedelta(0) <= sent - due < PROMISE, sent - due

    def test_a_webhook_retry_is_sent_within_5_seconds_of_its_time(
        self, qcluster: QCluster, receiver: Receiver, settings: Any
    ) -> None:
        settings.HITL_WEBHOOK_RETRY_BASE = 3
        world = build_world()
        webhook, receiver.secret = webhook_outbox.create_webhook(
            world.deployment, url=receiver.url, actor="test", max_retries=2
        )
        receiver.statuses = [503]
        qcluster.start()
        world.create()
        first, second = receiver.wait_for(2, timeout=25)[:2]
        late = second.received_at - first.received_at - 3
        assert 0 <= late < 5, late
        wait_until(lambda: WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED, timeout=10)
        assert len(receiver.received) == 2  # each attempt once


@pytest.mark.django_db
class TestTheTicker:
    def test_a_due_retry_is_queued_once_until_an_attempt_claims_it(self, world: World, receiver: Receiver) -> None:
        webhook, _ = webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        receiver.statuses = [503]
        world.create()  # the first attempt runs inline (tests' sync queue) and fails: a retry is due later
        delivery = WebhookDelivery.objects.get()
        assert delivery.attempt_count == 1 and delivery.queued_until is None
        later = delivery.next_attempt_at + timedelta(seconds=1)
        assert webhook_outbox.due_deliveries(later, 100) == [delivery.pk]
        assert webhook_outbox.due_deliveries(later, 100) == []  # queued: the next ticks leave it alone
        # A task that never ran (a lost enqueue): queued again once its grace has passed.
        grace = later + timedelta(seconds=outbox.QUEUED_FOR_SECONDS + 1)
        assert webhook_outbox.due_deliveries(grace, 100) == [delivery.pk]

    def test_a_new_delivery_is_not_queued_again_while_its_first_task_waits(
        self, world: World, receiver: Receiver
    ) -> None:
        from django.db import transaction

        webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        request = HITLRequest.objects.get(pk=world.create()["id"])
        WebhookDelivery.objects.all().delete()
        with transaction.atomic():
            ids = webhook_outbox.stage_deliveries(request, "new_request")
        assert len(ids) == 1
        staged = WebhookDelivery.objects.get(pk=ids[0])
        assert staged.attempt_count == 0 and staged.queued_until is not None
        assert webhook_outbox.due_deliveries(timezone.now(), 100) == []  # its task is on the queue already

    def test_tick_does_the_due_work_and_leaves_housekeeping_to_the_sweep(self, world: World) -> None:
        created = world.create(on_timeout="default", default_outcome="approved")
        HITLRequest.objects.filter(pk=created["id"]).update(due_at=timezone.now() - timedelta(seconds=1))
        report = sweep.tick()
        assert report is not None and report.expired == 1
        assert HITLRequest.objects.get(pk=created["id"]).status == "auto_responded"


@pytest.mark.django_db(transaction=True)
def test_one_pass_at_a_time_across_workers_on_postgresql(world: World) -> None:
    """Another worker's pass holds the lock: this one returns at once and leaves the work to it."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's (SQLite has one writer)")
    import psycopg

    created = world.create(on_timeout="default", default_outcome="approved")
    HITLRequest.objects.filter(pk=created["id"]).update(due_at=timezone.now() - timedelta(seconds=1))
    db = connection.settings_dict
    other = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"])
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [sweep._TICK_LOCK_KEY])
        assert sweep.tick() is None
        assert sweep.sweep().expired == 0  # the minute sweep leaves the due work to the pass at work
        assert HITLRequest.objects.get(pk=created["id"]).is_pending
        other.execute("SELECT pg_advisory_unlock(%s)", [sweep._TICK_LOCK_KEY])
        assert sweep.tick().expired == 1
    finally:
        other.close()
