"""django-q2 task functions: thin and idempotent (delivery is at-least-once)."""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from hitl.channels import notification_outbox, webhook_outbox
from hitl.lib.queue import enqueue
from hitl.models import HITLRequest, NotificationDelivery
from hitl.services import sweep as sweeper

logger = logging.getLogger(__name__)

# A legacy `notify_channel` task that meets an unreachable database before its notification is in the
# outbox is queued again after these pauses (about a minute in all), rather than lost.
NOTIFY_RETRY_DELAYS = (1, 2, 4, 8, 15, 30)
NOTIFY_FAILURE_BACKOFF = notification_outbox.NOTIFY_FAILURE_BACKOFF


def deliver_notification(delivery_id: int) -> str:
    """One try of an outbox notification (`hitl.channels.notification_outbox.deliver`)."""
    return notification_outbox.deliver(delivery_id)


def notify_channel(channel_path: str, request_id: str, event: str, attempt: int = 0, failures: int = 0) -> None:
    """The task of releases before the notification outbox, still queued by flows' recovery of runs
    whose resume was lost: writes the notification to the outbox now and makes its first try there
    (`failures` earlier failed tries count towards the backoff). `attempt` counts database-outage
    retries of this task while nothing is in the outbox yet."""
    try:
        if not HITLRequest.objects.filter(pk=request_id).exists():
            logger.warning("notify_channel: request %s is gone", request_id)
            return
        now = timezone.now()
        row = NotificationDelivery.objects.create(
            request_id=request_id,
            channel=channel_path,
            event=event,
            attempt_count=failures,
            failures=failures,
            next_attempt_at=now,
            created_at=now,
        )
    except (OperationalError, InterfaceError) as exc:
        if attempt >= len(NOTIFY_RETRY_DELAYS):
            logger.error(
                "notify_channel %s %s/%s: database still unreachable, giving up", channel_path, request_id, event
            )
            raise
        delay = NOTIFY_RETRY_DELAYS[attempt]
        logger.warning(
            "notify_channel %s %s/%s: database unreachable (%s); again in %s s",
            channel_path,
            request_id,
            event,
            exc,
            delay,
        )
        connection.close()  # the next attempt opens a fresh connection
        time.sleep(delay)
        enqueue("hitl.tasks.notify_channel", channel_path, request_id, event, attempt + 1, failures)
        return
    notification_outbox.deliver(row.pk)


def send_reply_confirmation(request_id: str, to: str, in_reply_to: str) -> None:
    """The task of releases before reply emails had an outbox, still on the queue after an upgrade:
    puts the confirmation in the outbox (`hitl.channels.replies`), which sends it."""
    from hitl.channels import replies

    request = HITLRequest.objects.filter(pk=request_id).first()
    if request is not None:
        replies.queue(request, replies.CONFIRMATION, to, in_reply_to=in_reply_to)


def send_reply_error(to: str, context: dict[str, object]) -> None:
    """Explain to an email responder why their reply was not used, and what to do: the error emails
    about no request (an unknown sender, no token; the others go through the outbox, and so do those
    of a request queued by releases before it). A failed send is logged and left: best effort."""
    from hitl.channels import replies

    request = None
    if context.get("request_id"):
        request = HITLRequest.objects.select_related("deployment").filter(pk=str(context["request_id"])).first()
    if request is not None:
        replies.queue(request, replies.ERROR, to, context=context)
        return
    replies.error(None, to, context).send()


def sweep() -> str:
    """The minute schedule's task (hitl.schedules): one pass of the deadline sweeper."""
    return str(sweeper.sweep())


def deliver_webhook(delivery_id: int) -> None:
    """One attempt of one webhook delivery, if it is due (a duplicate task finds nothing to do)."""
    webhook_outbox.attempt_delivery(delivery_id)


def process_slack_interaction(deployment_id: int, app_origin: str, payload: dict[str, object]) -> None:
    """A verified Slack press or modal submission (queued by the interactions endpoint, which has to
    answer Slack within 3 seconds): identify the presser and answer, or tell them why not."""
    from hitl.inbound.slack import process_interaction

    process_interaction(deployment_id, app_origin, payload)
