"""The form every typed-forms test answers: a string, an enum, a bounded number, a boolean and a
multi-select (SPEC §14)."""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent, EventType
from hitl.models import Decision, Resolution

SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Vendor check",
    "properties": {
        "vendor": {
            "type": "string",
            "title": "Vendor name",
            "description": "As on the invoice.",
            "minLength": 2,
            "maxLength": 80,
        },
        "risk": {"type": "string", "title": "Risk", "enum": ["low", "medium", "high"], "default": "low"},
        "amount": {"type": "number", "title": "Amount", "minimum": 1, "maximum": 10000},
        "approved": {"type": "boolean", "title": "Approved", "default": False},
        "regions": {
            "type": "array",
            "title": "Regions",
            "items": {"type": "string", "enum": ["eu", "us", "apac"]},
        },
        "contact": {"type": "string", "title": "Contact", "format": "email"},
    },
    "required": ["vendor", "risk", "amount"],
}
INITIAL: dict[str, Any] = {"vendor": "Acme", "amount": 100}


def form_payload(**extra: Any) -> dict[str, Any]:
    return {"message": "Check this vendor", "mode": "form", "schema": SCHEMA, "initial": INITIAL, **extra}


def nothing_recorded(request_id: Any) -> bool:
    """No Resolution, no Decision and no resolution (or decision) audit event for the request."""
    resolved_events = AuditEvent.objects.filter(
        target_id=str(request_id),
        event_type__in=[EventType.RESPONSE_SUBMITTED, EventType.DECISION_RECORDED, EventType.AUTO_RESPONDED],
    )
    return (
        not Resolution.objects.filter(request_id=request_id).exists()
        and not Decision.objects.filter(request_id=request_id).exists()
        and not resolved_events.exists()
    )
