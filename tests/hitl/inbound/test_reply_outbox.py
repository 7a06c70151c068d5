"""The emails back to an email responder (the confirmation, the error email) go through the notification
outbox: a failed send is recorded and tried again, never lost with its task (hitl.channels.replies)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from hitl import tasks
from hitl.channels import replies
from hitl.models import DeliveryStatus, HITLRequest, NotificationDelivery
from hitl.services import sweep
from tests.hitl.services.test_notification_retry import refusing_smtp  # noqa: F401 - a fixture
from tests.support import esp_payloads as esp
from tests.support.base import World
from tests.support.inbound import pending_request

pytestmark = pytest.mark.django_db

REVIEWER = "reviewer@example.com"


def reply_rows(request_id: str) -> Any:
    return NotificationDelivery.objects.filter(request__pk=request_id, channel=replies.PATH)


def audited(request_id: str, event_type: str, event: str) -> list[dict[str, Any]]:
    rows = AuditEvent.objects.filter(event_type=event_type, target_id=request_id, data__event=event)
    return [row.data for row in rows]


class TestTheConfirmation:
    def test_it_is_an_outbox_row_with_its_recipient_sent_once_and_audited(self, world: World) -> None:
        request_id, reply_to = pending_request(world)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="approved")
        assert HITLRequest.objects.get(pk=request_id).status == "responded"
        row = reply_rows(request_id).get()
        assert (row.event, row.status, row.attempt_count) == (replies.CONFIRMATION, DeliveryStatus.DELIVERED, 1)
        assert row.payload["to"] == REVIEWER and row.payload["in_reply_to"]
        assert [m.to for m in mail.outbox] == [[REVIEWER]] and "answer recorded" in mail.outbox[0].subject
        assert audited(request_id, "notification.sent", replies.CONFIRMATION) == [
            {"to": REVIEWER, "event": replies.CONFIRMATION}
        ]

    def test_a_failed_send_is_recorded_and_tried_again_until_it_goes(
        self,
        world: World,
        settings: Any,
        refusing_smtp: int,  # noqa: F811
    ) -> None:
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        request_id, reply_to = pending_request(world)  # notified while the mail server worked
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # now it refuses
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="approved")
        # The answer is recorded whatever happens to the email that confirms it.
        request = HITLRequest.objects.get(pk=request_id)
        assert request.status == "responded" and request.notification_error == ""
        row = reply_rows(request_id).get()
        assert (row.status, row.failures) == (DeliveryStatus.PENDING, 1)
        assert "ConnectionRefusedError" in row.last_error and row.next_attempt_at > timezone.now()
        failed = audited(request_id, "notification.failed", replies.CONFIRMATION)
        assert len(failed) == 1 and failed[0]["to"] == REVIEWER and "ConnectionRefusedError" in failed[0]["error"]
        # Nothing goes before its backoff; then the server is back and the ticker sends it.
        sweep.tick()
        assert reply_rows(request_id).get().failures == 1 and mail.outbox == []
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        reply_rows(request_id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        sweep.tick()
        row.refresh_from_db()
        assert (row.status, row.failures, row.attempt_count) == (DeliveryStatus.DELIVERED, 1, 2)
        assert [m.to for m in mail.outbox] == [[REVIEWER]] and "answer recorded" in mail.outbox[0].subject
        assert len(audited(request_id, "notification.sent", replies.CONFIRMATION)) == 1

    def test_a_task_queued_by_an_older_release_goes_through_the_outbox(self, world: World) -> None:
        request_id, reply_to = pending_request(world)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="approved")
        mail.outbox.clear()
        tasks.send_reply_confirmation(request_id, REVIEWER, "<old@example.com>")
        rows = reply_rows(request_id).order_by("pk")
        assert rows.count() == 2 and rows.last().payload == {"to": REVIEWER, "in_reply_to": "<old@example.com>"}
        assert len(mail.outbox) == 1 and mail.outbox[0].extra_headers["In-Reply-To"] == "<old@example.com>"


class TestTheErrorEmail:
    def test_a_refused_reply_to_a_request_is_explained_through_the_outbox(self, world: World) -> None:
        request_id, reply_to = pending_request(world, mode="approval", emit_options=None)
        esp.reply(Client(), "postmark", sender=REVIEWER, to=reply_to, body="perhaps later")
        assert HITLRequest.objects.get(pk=request_id).status == "pending"
        row = reply_rows(request_id).get()
        assert (row.event, row.status) == (replies.ERROR, DeliveryStatus.DELIVERED)
        assert row.payload["to"] == REVIEWER and row.payload["context"]["why"]
        assert len(mail.outbox) == 1 and "approve" in mail.outbox[0].body
        assert len(audited(request_id, "notification.sent", replies.ERROR)) == 1

    def test_a_row_without_a_recipient_fails_clearly_and_sends_nothing(self, world: World) -> None:
        request_id, _ = pending_request(world)
        request = HITLRequest.objects.get(pk=request_id)
        from hitl.channels import notification_outbox

        [pk] = notification_outbox.stage(request, replies.ERROR, [replies.PATH], payload={})
        assert notification_outbox.deliver(pk) == "retry"
        assert "names no recipient" in NotificationDelivery.objects.get(pk=pk).last_error
        assert mail.outbox == []
