"""Webhook bodies (SPEC §6). `new_request` is exactly the seed's shape; the resolution events carry the
same `request` and `deployment` objects plus the SPEC §2 result."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hitl.lib.links import callback_url

if TYPE_CHECKING:
    from hitl.models import HITLRequest, Resolution


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the REST API writes it."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def request_object(request: HITLRequest) -> dict[str, Any]:
    return {
        "id": str(request.pk),
        "flow_id": request.flow_id,
        "method_name": request.method_name,
        "message": request.message,
        "emit_options": list(request.emit_options or []),
        "state": request.state or {},
        "metadata": request.metadata or {},
        "created_at": iso(request.created_at),
    }


def deployment_object(request: HITLRequest) -> dict[str, Any]:
    deployment = request.deployment
    return {"id": deployment.pk, "name": deployment.name, "organization_id": deployment.organization_id}


def build_payload(request: HITLRequest, event: str, resolution: Resolution | None = None) -> dict[str, Any]:
    if event == "new_request":
        return {
            "event": event,
            "request": request_object(request),
            "deployment": deployment_object(request),
            "callback_url": callback_url(request),
            "assigned_to_email": request.assigned_to_email,
        }
    if resolution is None:
        raise ValueError(f"{event} needs the request's resolution")
    return {
        "event": event,
        "request": {**request_object(request), "status": resolution.status},
        "deployment": deployment_object(request),
        "assigned_to_email": request.assigned_to_email,
        "result": resolution.result,
    }


def decision_payload(request: HITLRequest, decision: Any, decisions: list[Any]) -> dict[str, Any]:
    """`decision_recorded` (SPEC §13): one approver decided, the request is still pending."""
    from hitl.results import empty_result

    decided = {d.approver for d in decisions}
    return {
        "event": "decision_recorded",
        "request": {**request_object(request), "status": "pending", "policy": request.policy},
        "deployment": deployment_object(request),
        "assigned_to_email": request.assigned_to_email,
        "decision": decision.as_result(),
        "decisions": [d.as_result() for d in decisions],
        "waiting_for": [seat.email for seat in request.approver_seats.filter(active=True) if seat.email not in decided],
        "result": {**empty_result(request), "decisions": [d.as_result() for d in decisions]},
    }


def encode(payload: dict[str, Any]) -> str:
    """The body as sent and signed. Stored as text, so every retry sends the very same bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
