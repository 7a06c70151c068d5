"""The base every channel shares: `notify(request, event)` runs in a django-q2 task, never in a web
request, and raises `ChannelError` for a failure it has recorded (`record_failure`); the task retries
it with backoff."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from hitl.models import HITLRequest


class Event:
    """What happened to a request; channels choose which they act on."""

    NEW_REQUEST = "new_request"
    RESPONDED = "request_responded"
    AUTO_RESPONDED = "request_auto_responded"
    TIMED_OUT = "request_timed_out"
    CANCELLED = "request_cancelled"
    REASSIGNED = "request_reassigned"
    REMINDER = "request_reminder"
    RESEND = "request_resend"

    RESOLVED_BY_STATUS: ClassVar[dict[str, str]] = {
        "responded": RESPONDED,
        "auto_responded": AUTO_RESPONDED,
        "timed_out": TIMED_OUT,
        "cancelled": CANCELLED,
    }


class ChannelError(Exception):
    """A delivery failed; `detail` is safe to show ops staff (no secrets, no tokens)."""

    def __init__(self, detail: str, *, retryable: bool = False):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        # Set by a channel that recorded the failure on the request itself; the task records the others.
        self.recorded = False


def record_failure(request: HITLRequest, source: str, event: str, detail: str, **data: object) -> None:
    """One failed notification attempt, where ops staff look: the request (its last error and the count,
    shown in the admin and the API) and the audit log."""
    from django.db.models import F

    from audit.models import EventType
    from audit.services import record_event
    from hitl.models import HITLRequest as Model

    detail = detail[:1000]
    Model.objects.filter(pk=request.pk).update(
        notification_error=detail, notification_failures=F("notification_failures") + 1
    )
    record_event(
        EventType.NOTIFICATION_FAILED, target=request, source=source, data={**data, "event": event, "error": detail}
    )


class Channel:
    name: ClassVar[str] = ""
    events: ClassVar[frozenset[str]] = frozenset()

    def stage(self, request: HITLRequest, event: str) -> None:
        """Called by `announce` inside the transaction that changed the request. Channels that keep an
        outbox (webhooks) write their durable work here, so it commits with the change or not at all;
        the others do nothing."""

    def wants(self, request: HITLRequest, event: str) -> bool:
        return event in self.events

    def notify(self, request: HITLRequest, event: str) -> None:
        raise NotImplementedError

    def notify_from_outbox(self, request: HITLRequest, event: str, payload: dict[str, Any]) -> None:
        """What the notification outbox calls for one of its rows: `notify`, unless the channel needs
        the row's payload (a reply email's recipient, `hitl.channels.replies`)."""
        self.notify(request, event)


@cache
def channel(path: str) -> Channel:
    """The channel instance for a dotted class path (one per process)."""
    return import_string(path)()
