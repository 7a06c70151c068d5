"""Writes for flows that are not a run's steps: attaching registered flows to a deployment, audited."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from flows.errors import FlowError
from flows.models import DeploymentFlow
from flows.registry import flow_names


@transaction.atomic
def attach_flows(deployment: Deployment, names: list[str], *, actor: str) -> list[str]:
    """Attach registered flows by name (once each); an unknown name attaches nothing and raises."""
    known = set(flow_names())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise FlowError(
            f"Unknown flow(s): {', '.join(unknown)}. Registered: {', '.join(sorted(known)) or 'none'}.",
            "unknown_flow",
        )
    attached = []
    for name in dict.fromkeys(names):
        _, created = DeploymentFlow.objects.get_or_create(deployment=deployment, flow_name=name)
        if created:
            attached.append(name)
    if attached:
        record_event(
            EventType.CONFIG_CHANGED,
            actor=actor,
            target=deployment,
            deployment_id=deployment.pk,
            data={"action": "deployment.flows_attached", "flows": attached},
        )
    return attached
