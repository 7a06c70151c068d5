"""Signal receivers: Anymail's inbound webhook (any ESP) hands every message to hitl.inbound."""

from __future__ import annotations

from typing import Any

from anymail.signals import AnymailInboundEvent, inbound
from django.dispatch import receiver

from hitl.inbound.email import process_inbound_email


@receiver(inbound, dispatch_uid="hitl.inbound_email")
def handle_inbound(sender: Any, event: AnymailInboundEvent, esp_name: str, **kwargs: Any) -> None:
    process_inbound_email(event.message, via=f"anymail:{esp_name.lower()}")
