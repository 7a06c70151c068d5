"""Notifications have an outbox (issue 21: an email was lost when a worker was SIGKILLed): the row is
written with the change it announces, a lost task or a dead worker's try is queued again by the
worker's ticker, and a failed try is retried with backoff (test_notification_retry.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from hitl.channels import notification_outbox
from hitl.models import DeliveryStatus, HITLRequest, NotificationDelivery
from hitl.services import sweep
from tests.hitl.services.test_db_outage import database_down
from tests.support.base import World, build_world
from tests.support.qcluster import QCluster, wait_until

EMAIL = "hitl.channels.email.EmailChannel"
REVIEWER = "reviewer@example.com"


@pytest.mark.django_db
class TestTheOutbox:
    def test_the_notification_is_written_with_the_request_and_delivered_once(
        self, world: World, mailoutbox: list[Any]
    ) -> None:
        created = world.create(assign_to=REVIEWER)  # sync mode: its task ran inline
        row = NotificationDelivery.objects.get(request_id=created["id"])
        assert (row.channel, row.event, row.status) == (EMAIL, "new_request", DeliveryStatus.DELIVERED)
        assert row.attempt_count == 1 and row.failures == 0 and row.delivered_at is not None
        assert [m.to for m in mailoutbox] == [[REVIEWER]]
        # A second task for the same row (a duplicate on the queue) sends nothing.
        assert notification_outbox.deliver(row.pk) == "not due"
        assert len(mailoutbox) == 1

    def test_an_email_try_is_one_claim_one_read_and_one_commit_of_what_was_sent(
        self, world: World, mailoutbox: list[Any], monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
    ) -> None:
        monkeypatch.setattr("hitl.channels.outbox.enqueue", lambda *args: None)  # the row stays pending
        created = world.create(assign_to=REVIEWER)
        row = NotificationDelivery.objects.get(request_id=created["id"])
        assert row.status == DeliveryStatus.PENDING and not mailoutbox
        # The claim (UPDATE … RETURNING), the request, then the sent email's three records in one
        # transaction (a savepoint here, inside the test's transaction), then the outcome.
        with django_assert_num_queries(8):
            assert notification_outbox.deliver(row.pk) == "delivered"
        assert [m.to for m in mailoutbox] == [[REVIEWER]]
        row.refresh_from_db()
        assert (row.status, row.attempt_count, row.failures) == (DeliveryStatus.DELIVERED, 1, 0)
        assert row.next_attempt_at is None and row.queued_until is None
        assert AuditEvent.objects.filter(event_type="notification.sent", target_id=created["id"]).count() == 1
        assert notification_outbox.deliver(row.pk) == "not due"

    def test_a_rolled_back_change_leaves_no_notification(self, world: World) -> None:
        from hitl.channels.announce import announce

        request = HITLRequest.objects.get(pk=world.create(assign_to=REVIEWER)["id"])
        before = NotificationDelivery.objects.count()
        with pytest.raises(RuntimeError), transaction.atomic():
            announce(request, "request_resend")
            assert NotificationDelivery.objects.count() == before + 1
            raise RuntimeError("the change fails")
        assert NotificationDelivery.objects.count() == before

    def test_a_try_whose_worker_died_counts_as_failed_and_is_tried_again_after_its_lease(
        self, world: World, mailoutbox: list[Any]
    ) -> None:
        created = world.create(assign_to=REVIEWER)
        mailoutbox.clear()
        row = NotificationDelivery.objects.get(request_id=created["id"])
        leased = timezone.now() + timedelta(seconds=notification_outbox.lease_seconds())
        # As a claim leaves it: attempt 1 claimed, no outcome written, the lease running.
        NotificationDelivery.objects.filter(pk=row.pk).update(
            status=DeliveryStatus.PENDING, attempt_count=1, failures=0, next_attempt_at=leased, queued_until=None
        )
        assert sweep.tick() is not None and mailoutbox == []  # still leased: nobody else may try
        NotificationDelivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # it ran out
        assert sweep.tick() is not None
        row.refresh_from_db()
        assert (row.status, row.attempt_count, row.failures) == (DeliveryStatus.DELIVERED, 2, 1)
        assert [m.to for m in mailoutbox] == [[REVIEWER]]
        failed = AuditEvent.objects.get(event_type="notification.failed", target_id=created["id"])
        assert failed.data["error"] == notification_outbox.ABANDONED

    def test_delivered_rows_are_forgotten_after_30_days_and_others_kept(self, world: World) -> None:
        kept = NotificationDelivery.objects.get(request_id=world.create(assign_to=REVIEWER)["id"])
        old = NotificationDelivery.objects.get(request_id=world.create(assign_to=REVIEWER)["id"])
        failed = NotificationDelivery.objects.get(request_id=world.create(assign_to=REVIEWER)["id"])
        long_ago = timezone.now() - timedelta(days=31)
        NotificationDelivery.objects.filter(pk=old.pk).update(delivered_at=long_ago)
        NotificationDelivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED, delivered_at=long_ago)
        sweep.sweep()
        assert set(NotificationDelivery.objects.values_list("pk", flat=True)) >= {kept.pk, failed.pk}
        assert not NotificationDelivery.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db(transaction=True)
class TestDuringADatabaseOutage:
    def test_a_task_that_meets_a_database_outage_leaves_the_row_for_the_ticker(
        self, world: World, mailoutbox: list[Any]
    ) -> None:
        created = world.create(assign_to=REVIEWER)
        mailoutbox.clear()
        row = NotificationDelivery.objects.get(request_id=created["id"])
        NotificationDelivery.objects.filter(pk=row.pk).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), queued_until=timezone.now()
        )
        with database_down(), pytest.raises(OperationalError):
            notification_outbox.deliver(row.pk)
        assert mailoutbox == []
        assert NotificationDelivery.objects.get(pk=row.pk).status == DeliveryStatus.PENDING
        report = sweep.tick()  # the database is back: the ticker queues it (inline here) and it sends
        assert report is not None and report.notifications == 1
        assert [m.to for m in mailoutbox] == [[REVIEWER]]
        assert NotificationDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED


@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """An SMTP server that accepts the connection and never says a word: a send hangs in it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def _mail_env(tmp_path: Path) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }


class TestOnARealWorker:
    def test_a_task_the_broker_lost_is_queued_again_by_the_ticker(self, qcluster: QCluster, tmp_path: Path) -> None:
        from django_q.brokers import get_broker

        world = build_world()
        created = world.create(assign_to=REVIEWER)  # no worker yet: its task waits on the broker
        get_broker().purge_queue()  # … and is lost, as Redis loses what a SIGKILLed worker held
        row = NotificationDelivery.objects.get(request_id=created["id"])
        qcluster.extra_env.update(_mail_env(tmp_path))
        qcluster.start()
        # The lost task had QUEUED_FOR_SECONDS to start; once that has passed the ticker queues another.
        NotificationDelivery.objects.filter(pk=row.pk).update(queued_until=timezone.now())
        wait_until(
            lambda: NotificationDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED,
            timeout=30,
            what="delivered",
            cluster=qcluster,
        )
        assert HITLRequest.objects.get(pk=created["id"]).notified_at is not None
        row.refresh_from_db()
        assert (row.status, row.attempt_count, row.failures) == (DeliveryStatus.DELIVERED, 1, 0)
        assert len(list((tmp_path / "mail").glob("*.log"))) == 1

    def test_a_worker_killed_mid_send_leaves_the_notification_to_the_next_one(
        self, qcluster: QCluster, tmp_path: Path, silent_smtp: int
    ) -> None:
        world = build_world()
        qcluster.extra_env.update(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(silent_smtp),
            EMAIL_TIMEOUT="60",
        )
        qcluster.start()
        created = world.create(assign_to=REVIEWER)
        row = NotificationDelivery.objects.get(request_id=created["id"])
        wait_until(
            lambda: NotificationDelivery.objects.get(pk=row.pk).attempt_count == 1, what="claimed", cluster=qcluster
        )
        qcluster.kill()  # hanging in the SMTP greeting
        row.refresh_from_db()
        assert row.status == DeliveryStatus.PENDING and row.next_attempt_at > timezone.now()  # type: ignore[operator]
        qcluster.extra_env.update(_mail_env(tmp_path))
        qcluster.start()
        NotificationDelivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # the lease ran out
        wait_until(
            lambda: NotificationDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED,
            timeout=30,
            what="delivered",
            cluster=qcluster,
        )
        assert HITLRequest.objects.get(pk=created["id"]).notified_at is not None
        row.refresh_from_db()
        assert (row.status, row.attempt_count, row.failures) == (DeliveryStatus.DELIVERED, 2, 1)
        assert len(list((tmp_path / "mail").glob("*.log"))) == 1
