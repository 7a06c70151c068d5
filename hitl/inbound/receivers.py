"""Signal receivers: Anymail's inbound webhook (any ESP) hands every message to hitl.inbound; its
tracking webhook hands bounces to `services.record_bounce`."""

from __future__ import annotations

from typing import Any

from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking
from django.dispatch import receiver

from hitl.inbound.email import process_inbound_email
from hitl.services.bounces import BOUNCE_EVENTS, record_bounce


@receiver(inbound, dispatch_uid="hitl.inbound_email")
def handle_inbound(sender: Any, event: AnymailInboundEvent | None, esp_name: str, **kwargs: Any) -> None:
    # Some ESPs' "test your integration" posts carry no message (Mailtrap's sample event is None,
    # Resend's test event has no email id): nothing to answer, and no reason for a 500 and retries.
    if event is None or event.message is None:
        return
    process_inbound_email(event.message, via=f"anymail:{esp_name.lower()}")


@receiver(tracking, dispatch_uid="hitl.email_tracking")
def handle_tracking(sender: Any, event: AnymailTrackingEvent | None, esp_name: str, **kwargs: Any) -> None:
    """A bounce, a rejection or a permanent failure of a notification we sent; other events (delivered,
    opened, ...) are not ours to keep."""
    if event is None or event.event_type not in BOUNCE_EVENTS or not event.message_id:
        return
    reason = event.description or event.mta_response or event.reject_reason or event.event_type
    record_bounce(
        esp_message_id=str(event.message_id),
        recipient=str(event.recipient or ""),
        reason=str(reason),
        via=f"anymail:{esp_name.lower()}",
    )
