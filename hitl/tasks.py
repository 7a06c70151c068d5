"""django-q2 task functions: thin and idempotent (delivery is at-least-once)."""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError, connection

from hitl.channels import webhook_outbox
from hitl.channels.announce import channel
from hitl.channels.base import ChannelError
from hitl.lib.queue import enqueue
from hitl.models import HITLRequest
from hitl.services import sweep as sweeper
from hitl.services.notify import record_notification_failure

logger = logging.getLogger(__name__)

# A notification whose task meets an unreachable database (a restart, a failover) is queued again
# after these pauses (about a minute in all), rather than lost: django-q2 never retries a failed task.
NOTIFY_RETRY_DELAYS = (1, 2, 4, 8, 15, 30)


def notify_channel(channel_path: str, request_id: str, event: str, attempt: int = 0) -> None:
    try:
        # get(), not first(): no ORDER BY (Meta.ordering) to build and sort for one row by its key. No
        # organization: no channel reads more of it than `deployment.organization_id`.
        try:
            request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
        except HITLRequest.DoesNotExist:
            logger.warning("notify_channel: request %s is gone", request_id)
            return
        instance = channel(channel_path)
        try:
            instance.notify(request, event)
        except ChannelError as exc:
            if not exc.recorded:
                record_notification_failure(
                    request, channel=instance.name or channel_path, event=event, detail=exc.detail
                )
            raise
    except ChannelError as exc:
        # Recorded and audited (above or by the channel); nothing more to retry here.
        logger.warning("channel %s failed for %s/%s: %s", channel_path, request_id, event, exc.detail)
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
        enqueue("hitl.tasks.notify_channel", channel_path, request_id, event, attempt + 1)


def send_reply_confirmation(request_id: str, to: str, in_reply_to: str) -> None:
    """Tell an email responder their answer was recorded (threaded under the notification)."""
    from hitl.lib import emails

    request = HITLRequest.objects.select_related("deployment", "resolution").filter(pk=request_id).first()
    if request is None or not hasattr(request, "resolution"):
        return
    thread = emails.thread_id(request.pk)
    references = " ".join(x for x in (thread, in_reply_to) if x)
    message = emails.build(
        "confirmation",
        {"request": request, "deployment": request.deployment, "result": request.resolution.result},
        to=to,
        headers={"In-Reply-To": in_reply_to or thread, "References": references, "Auto-Submitted": "auto-replied"},
    )
    message.send()


def send_reply_error(to: str, context: dict[str, object]) -> None:
    """Explain to an email responder why their reply was not used, and what to do."""
    from hitl.lib import emails

    request = None
    if context.get("request_id"):
        request = HITLRequest.objects.select_related("deployment").filter(pk=str(context["request_id"])).first()
    in_reply_to = str(context.get("in_reply_to") or "")
    headers = {"Auto-Submitted": "auto-replied"}
    if in_reply_to:
        headers.update({"In-Reply-To": in_reply_to, "References": in_reply_to})
    message = emails.build("reply-error", {**context, "request": request}, to=to, headers=headers)
    message.send()


def sweep() -> str:
    """The minute schedule's task (hitl.schedules): one pass of the deadline sweeper."""
    return str(sweeper.sweep())


def deliver_webhook(delivery_id: int) -> None:
    """One attempt of one webhook delivery, if it is due (a duplicate task finds nothing to do)."""
    webhook_outbox.attempt_delivery(delivery_id)
