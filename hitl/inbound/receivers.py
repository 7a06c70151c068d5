"""Signal receivers: Anymail's inbound webhook (any ESP) hands every message to hitl.inbound."""

from __future__ import annotations

from typing import Any

from anymail.signals import AnymailInboundEvent, inbound
from django.dispatch import receiver

from hitl.inbound.email import process_inbound_email


@receiver(inbound, dispatch_uid="hitl.inbound_email")
def handle_inbound(sender: Any, event: AnymailInboundEvent | None, esp_name: str, **kwargs: Any) -> None:
    # Some ESPs' "test your integration" posts carry no message (Mailtrap's sample event is None,
    # Resend's test event has no email id): nothing to answer, and no reason for a 500 and retries.
    if event is None or event.message is None:
        return
    process_inbound_email(event.message, via=f"anymail:{esp_name.lower()}")
