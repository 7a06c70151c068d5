"""django-q2 task functions: thin and idempotent (delivery is at-least-once)."""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError, connection

from hitl.channels import webhook_outbox
from hitl.channels.announce import channel
from hitl.channels.base import ChannelError, record_failure
from hitl.lib.queue import enqueue, enqueue_in
from hitl.models import HITLRequest
from hitl.services import sweep as sweeper

logger = logging.getLogger(__name__)

# A notification whose task meets an unreachable database (a restart, a failover) is queued again
# after these pauses (about a minute in all), rather than lost: django-q2 never retries a failed task.
NOTIFY_RETRY_DELAYS = (1, 2, 4, 8, 15, 30)

# A notification that fails (the SMTP server refuses, the ESP or the Bot API answers an error, the
# channel raises) is tried again after these pauses: 6 tries over about 1 h 50 min (SPEC §17: at least
# 5 over at least an hour), each failure on the request and in the audit log.
NOTIFY_FAILURE_BACKOFF = (60, 300, 900, 1800, 3600)


def _channel_name(channel_path: str) -> str:
    try:
        return (channel(channel_path).name or channel_path.rsplit(".", 1)[-1])[:20]
    except Exception:  # an unknown path is the failure being recorded: name it as given
        return channel_path.rsplit(".", 1)[-1][:20]


def notify_channel(channel_path: str, request_id: str, event: str, attempt: int = 0, failures: int = 0) -> None:
    """`attempt` counts database-outage retries, `failures` failed deliveries (both default to 0, so
    tasks queued with the older three or four arguments still run)."""
    request: HITLRequest | None = None
    try:
        # get(), not first(): no ORDER BY (Meta.ordering) to build and sort for one row by its key. No
        # organization: no channel reads more of it than `deployment.organization_id`.
        try:
            request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
        except HITLRequest.DoesNotExist:
            logger.warning("notify_channel: request %s is gone", request_id)
            return
        channel(channel_path).notify(request, event)
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
    except Exception as exc:
        detail = exc.detail if isinstance(exc, ChannelError) else f"{type(exc).__name__}: {exc}"
        if request is not None and not getattr(exc, "recorded", False):
            # A channel that recorded its own failure (with its address) says so; the task records the rest.
            record_failure(request, _channel_name(channel_path), event, detail)
        if failures >= len(NOTIFY_FAILURE_BACKOFF):
            logger.error(
                "notify_channel %s %s/%s failed %s times, giving up: %s",
                channel_path,
                request_id,
                event,
                failures + 1,
                detail,
            )
            return
        delay = NOTIFY_FAILURE_BACKOFF[failures]
        logger.warning(
            "notify_channel %s %s/%s failed (%s); again in %s s", channel_path, request_id, event, detail, delay
        )
        enqueue_in(delay, "hitl.tasks.notify_channel", channel_path, request_id, event, 0, failures + 1)


def send_reply_confirmation(request_id: str, to: str, in_reply_to: str) -> None:
    """Tell an email responder their answer was recorded (threaded under the notification)."""
    from hitl.channels.email import form_lines
    from hitl.lib import emails

    request = HITLRequest.objects.select_related("deployment", "resolution").filter(pk=request_id).first()
    if request is None or not hasattr(request, "resolution"):
        return
    thread = emails.thread_id(request.pk)
    references = " ".join(x for x in (thread, in_reply_to) if x)
    message = emails.build(
        "confirmation",
        {
            "request": request,
            "deployment": request.deployment,
            "result": request.resolution.result,
            "form_lines": form_lines(request, request.resolution.result.get("form")),
        },
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


def process_slack_interaction(deployment_id: int, app_origin: str, payload: dict[str, object]) -> None:
    """A verified Slack press or modal submission (queued by the interactions endpoint, which has to
    answer Slack within 3 seconds): identify the presser and answer, or tell them why not."""
    from hitl.inbound.slack import process_interaction

    process_interaction(deployment_id, app_origin, payload)
