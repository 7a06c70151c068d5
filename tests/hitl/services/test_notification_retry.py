"""A failed notification is retried with backoff (SPEC §17: at least 5 tries over at least an hour), each
failure on the request (API, admin) and in the audit log; the admin lists the never-notified."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AuditEvent
from hitl import tasks
from hitl.models import DeliveryStatus, HITLRequest, NotificationDelivery
from hitl.services import sweep
from tests.support.base import World

REVIEWER = "reviewer@example.com"
EMAIL = "hitl.channels.email.EmailChannel"


@pytest.fixture
def refusing_smtp(settings: Any) -> int:
    """Django's real SMTP backend pointed at a port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    return port


def backoff_passes(request_id: str) -> list[float]:
    """Let every pending notification of the request come due (its backoff has passed) and run the
    worker's ticker, which queues it (inline here: sync mode), until none is left pending; the pauses
    the outbox asked for, in seconds."""
    delays = []
    for _ in range(20):
        rows = NotificationDelivery.objects.filter(request__pk=request_id, status=DeliveryStatus.PENDING)
        row = rows.first()
        if row is None:
            break
        failed_at = timezone.now()
        if row.next_attempt_at and row.attempt_count:
            delays.append((row.next_attempt_at - failed_at).total_seconds())
        rows.update(next_attempt_at=timezone.now() - timedelta(seconds=1), queued_until=None)
        assert sweep.tick() is not None
    return delays


class TestNotificationRetry:
    def test_it_records_every_failed_try_on_the_request_the_api_and_the_audit_log(
        self, world: World, refusing_smtp: int
    ) -> None:
        created = world.create(assign_to=REVIEWER)  # sync mode: the first try runs inline
        assert HITLRequest.objects.get(pk=created["id"]).notification_failures == 1
        backoff_passes(created["id"])
        tries = 1 + len(tasks.NOTIFY_FAILURE_BACKOFF)
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notification_failures == tries and request.notified_at is None
        assert "ConnectionRefusedError" in request.notification_error
        failed = AuditEvent.objects.filter(event_type="notification.failed", target_id=created["id"])
        assert failed.count() == tries
        body = world.client_for("key").get(f"/api/v1/requests/{created['id']}/").json()
        assert body["notification_failures"] == tries and body["notified_at"] is None
        assert "ConnectionRefusedError" in body["notification_error"]
        row = NotificationDelivery.objects.get(request_id=created["id"])
        assert (row.status, row.failures, row.attempt_count) == (DeliveryStatus.FAILED, tries, tries)
        assert "ConnectionRefusedError" in row.last_error

    def test_it_retries_at_least_5_times_over_at_least_an_hour_then_an_admin_retry_succeeds(
        self, world: World, settings: Any, refusing_smtp: int
    ) -> None:
        created = world.create(assign_to=REVIEWER)
        row = NotificationDelivery.objects.get(request_id=created["id"])
        # Nothing is sent before its time: a tick now finds nothing due.
        assert sweep.tick() is not None and NotificationDelivery.objects.get(pk=row.pk).failures == 1
        delays = backoff_passes(created["id"])
        assert len(delays) >= 5 and sum(delays) >= 3600, delays
        assert delays == sorted(delays), "backoff grows"
        assert HITLRequest.objects.get(pk=created["id"]).notification_failures == len(delays) + 1
        assert not Schedule.objects.filter(func__startswith="hitl.tasks.").exclude(func="hitl.tasks.sweep").exists()
        # Given up. The server comes back; ops staff try it again from the admin: it sends.
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        mail.outbox.clear()
        admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
        client = Client()
        client.force_login(admin)
        page = client.post(
            "/admin/hitl/notificationdelivery/",
            {"action": "try_again", "_selected_action": [row.pk]},
            follow=True,
        )
        assert "1 notification(s) queued again." in page.content.decode()
        request = HITLRequest.objects.get(pk=created["id"])
        assert len(mail.outbox) == 1 and request.notified_at is not None and request.notification_error == ""
        assert NotificationDelivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED
        assert AuditEvent.objects.filter(
            event_type="notification.sent", actor="ops", data__action="retry_requested"
        ).exists()

    def test_a_view_only_staff_user_cannot_try_again(self, world: World, refusing_smtp: int) -> None:
        from django.contrib.auth.models import Permission

        created = world.create(assign_to=REVIEWER)
        row = NotificationDelivery.objects.get(request_id=created["id"])
        NotificationDelivery.objects.filter(pk=row.pk).update(status=DeliveryStatus.FAILED)
        viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_notificationdelivery"))
        client = Client()
        client.force_login(viewer)
        assert client.get("/admin/hitl/notificationdelivery/").status_code == 200
        client.post("/admin/hitl/notificationdelivery/", {"action": "try_again", "_selected_action": [row.pk]})
        assert NotificationDelivery.objects.get(pk=row.pk).status == DeliveryStatus.FAILED

    def test_any_exception_of_a_channel_is_recorded_and_retried(self, world: World) -> None:
        created = world.create()
        tasks.notify_channel("tests.support.failing_backend.ExplodingChannel", created["id"], "new_request")
        backoff_passes(created["id"])
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notification_failures == 1 + len(tasks.NOTIFY_FAILURE_BACKOFF)
        assert request.notification_error == "RuntimeError: channel bug"
        event = AuditEvent.objects.filter(event_type="notification.failed").first()
        assert event is not None and event.source == "exploding"

    def test_a_retry_of_an_answered_request_sends_nothing(self, world: World, settings: Any) -> None:
        created = world.create(assign_to=REVIEWER)
        world.client_for("key").post(f"/api/v1/requests/{created['id']}/cancel/")
        mail.outbox.clear()
        tasks.notify_channel(EMAIL, created["id"], "new_request", 0, 3)
        assert mail.outbox == []


class TestUnnotifiedFilter:
    def test_the_admin_lists_requests_whose_notification_never_succeeded(
        self, world: World, settings: Any, refusing_smtp: int
    ) -> None:
        failed = world.create(assign_to=REVIEWER)
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        sent = world.create(assign_to=REVIEWER)
        admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
        client = Client()
        client.force_login(admin)
        page = client.get("/admin/hitl/hitlrequest/?notification=unnotified")
        assert page.status_code == 200
        html = page.content.decode()
        assert failed["id"] in html and sent["id"] not in html
        assert "Never notified" in client.get("/admin/hitl/hitlrequest/").content.decode()
        assert timezone.now() - timedelta(minutes=1) < HITLRequest.objects.get(pk=sent["id"]).notified_at  # type: ignore[operator]
