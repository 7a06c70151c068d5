"""Routing rules written from code and commands (the admin saves through its forms, audited there)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl.models import RoutingRule


@transaction.atomic
def add_routing_rule(deployment: Deployment, *, actor: str, **fields: Any) -> RoutingRule:
    """Create a validated routing rule (raises django ValidationError with per-field messages)."""
    rule = RoutingRule(deployment=deployment, **fields)
    rule.full_clean()
    rule.save()
    record_event(EventType.RULE_CHANGED, actor=actor, target=rule, data={"name": rule.name, "created": True})
    return rule
