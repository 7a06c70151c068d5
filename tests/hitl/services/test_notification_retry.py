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

from audit.models import AuditEvent
from hitl import tasks
from hitl.models import HITLRequest
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


class TestNotificationRetry:
    def test_it_records_every_failed_try_on_the_request_the_api_and_the_audit_log(
        self, world: World, refusing_smtp: int
    ) -> None:
        created = world.create(assign_to=REVIEWER)  # sync mode: every retry runs inline, at once
        tries = 1 + len(tasks.NOTIFY_FAILURE_BACKOFF)
        request = HITLRequest.objects.get(pk=created["id"])
        assert request.notification_failures == tries and request.notified_at is None
        assert "ConnectionRefusedError" in request.notification_error
        failed = AuditEvent.objects.filter(event_type="notification.failed", target_id=created["id"])
        assert failed.count() == tries
        body = world.client_for("key").get(f"/api/v1/requests/{created['id']}/").json()
        assert body["notification_failures"] == tries and body["notified_at"] is None
        assert "ConnectionRefusedError" in body["notification_error"]

    def test_it_schedules_at_least_5_retries_over_at_least_an_hour_then_succeeds(
        self, world: World, settings: Any, refusing_smtp: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from django_q.conf import Conf
        from django_q.models import Schedule

        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        created = world.create(assign_to=REVIEWER)
        mail.outbox.clear()
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        monkeypatch.setattr(Conf, "SYNC", False)  # retries become django-q2 schedules, as on a worker
        args: tuple[Any, ...] = (EMAIL, created["id"], "request_resend")  # a task queued before `failures`
        delays = []
        for _ in range(20):
            before = timezone.now()
            tasks.notify_channel(*args)
            retry = Schedule.objects.filter(func="hitl.tasks.notify_channel").order_by("-id").first()
            if retry is None or retry.args == repr(args) or retry.next_run < before:
                break
            delays.append((retry.next_run - before).total_seconds())
            args = eval(retry.args)  # django-q2 stores the arguments as their repr
            retry.delete()
        assert len(delays) >= 5 and sum(delays) >= 3600, delays
        assert delays == sorted(delays), "backoff grows"
        assert HITLRequest.objects.get(pk=created["id"]).notification_failures == len(delays) + 1
        # Given up: the last failure scheduled nothing more. The server comes back; a retry now sends.
        assert not Schedule.objects.filter(func="hitl.tasks.notify_channel").exists()
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        tasks.notify_channel(EMAIL, created["id"], "request_resend", 0, 1)
        request = HITLRequest.objects.get(pk=created["id"])
        assert len(mail.outbox) == 1 and request.notified_at is not None and request.notification_error == ""

    def test_any_exception_of_a_channel_is_recorded_and_retried(self, world: World) -> None:
        created = world.create()
        tasks.notify_channel("tests.support.failing_backend.ExplodingChannel", created["id"], "new_request")
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
