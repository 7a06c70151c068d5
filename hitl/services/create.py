"""Creating a request: validate the §2 fields, route, apply the deployment's deadlines, save, audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_events
from hitl import config_cache
from hitl.channels import slack
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.channels.telegram import target_of
from hitl.lib.errors import InvalidInput
from hitl.models import (
    Approver,
    AssignmentStep,
    Channel,
    HITLRequest,
    Mode,
    Policy,
    PoolError,
    Seat,
    Source,
    check_pool,
    resolve_pool,
)
from hitl.routing.assign import Assignment, choose_assignee
from hitl.services import rollups
from hitl.services.deadlines import follow_up
from hitl.services.request_input import RequestInput, validate_request_input


@transaction.atomic
def create_request(
    deployment: Deployment, data: dict[str, Any], *, actor: str, source: str = Source.API
) -> HITLRequest:
    """Validate the §2 fields, route, apply the deployment's timeout settings, save, audit."""
    clean = validate_request_input(data)
    now = timezone.now()

    timeout = clean.timeout
    default_outcome = clean.default_outcome
    if timeout is None and deployment.auto_response_enabled and deployment.auto_response_timeout_minutes:
        timeout = deployment.auto_response_timeout_minutes * 60
        if not default_outcome and clean.mode in (Mode.EMIT, Mode.APPROVAL):
            default_outcome = deployment.auto_response_default_outcome
            allowed = clean.emit_options if clean.mode == Mode.EMIT else ["approved", "rejected"]
            if default_outcome and default_outcome not in allowed:
                raise InvalidInput(
                    {
                        "default_outcome": [
                            f"The deployment's auto-response outcome '{default_outcome}' is not one of this "
                            f"request's options ({', '.join(allowed)}); pass default_outcome or fix the "
                            "deployment's settings."
                        ]
                    },
                    code="invalid_default_outcome",
                )

    rules = config_cache.routing_rules(deployment)
    assignment = choose_assignee(
        rules,
        creator_email=deployment.creator_email,
        method_name=clean.method_name,
        flow_name=clean.flow_name,
        state=clean.state,
        explicit=clean.assign_to or None,
    )
    pool = _pool_of(clean, assignment)
    if pool is not None:
        # The first seat is the request's assignee (inbox, Telegram/Slack targets); every seat decides.
        step = AssignmentStep.POOL if clean.approvers is not None else assignment.step
        assignment = Assignment(pool.seats[0].email, step, assignment.rule, assignment.problems)
    if clean.channel == Channel.SLACK:
        slack.require_configured(deployment, assignment.rule)
    if clean.channel == Channel.TELEGRAM and target_of(deployment, assignment.rule) is None:
        # Accepting it would notify nobody: no bot or chat for this deployment (or the rule that assigns it).
        raise InvalidInput(
            {
                "channel": [
                    "Telegram is not configured for this deployment (or the routing rule that assigns this "
                    "request): set its bot token and chat in the admin, or use channel email."
                ]
            },
            code="channel_unavailable",
        )
    follow = follow_up(deployment, assignment.rule)
    request = HITLRequest.objects.create(
        deployment=deployment,
        created_at=now,
        flow_id=clean.flow_id,
        flow_name=clean.flow_name,
        method_name=clean.method_name,
        message=clean.message,
        content=clean.content,
        mode=clean.mode,
        emit_options=clean.emit_options,
        options=clean.options,
        multiple=clean.multiple,
        state=clean.state,
        metadata=clean.metadata,
        channel=clean.channel,
        timeout_seconds=timeout,
        default_outcome=default_outcome,
        on_timeout=clean.on_timeout,
        link_ttl_seconds=clean.link_ttl or deployment.link_ttl_seconds,
        editable=clean.editable,
        form_schema=clean.schema,
        form_order=list((clean.schema or {}).get("properties") or {}),
        form_initial=clean.initial,
        requested_assignee=clean.assign_to,
        assigned_to_email=assignment.email,
        assigned_rule=assignment.rule,
        assigned_rule_name=assignment.rule.name if assignment.rule else "",
        assignment_step=assignment.step,
        assignment_problems=list(assignment.problems),
        approvers=pool.entries if pool else [],
        policy=pool.policy if pool else "",
        required=pool.required if pool else None,
        veto=pool.veto if pool else True,
        requested_by=clean.requested_by,
        due_at=now + timedelta(seconds=timeout) if timeout else None,
        sla_due_at=(now + timedelta(minutes=deployment.sla_target_minutes) if deployment.sla_target_minutes else None),
        reminder_due_at=follow.reminder_due(now),
        escalation_due_at=follow.escalation_due(now, level=0),
    )
    if pool is not None:
        Approver.objects.bulk_create(
            Approver(request=request, email=seat.email, via_group=seat.via_group, position=index, created_at=now)
            for index, seat in enumerate(pool.seats)
        )
    # Stage the outbox first: the audit append takes the chain's lock, held to COMMIT, so it comes last.
    announce(request, Event.NEW_REQUEST)
    record_events(  # one append to the chain for both
        [
            {
                "event_type": EventType.REQUEST_CREATED,
                "actor": actor,
                "source": source,
                "target": request,
                "data": {"method_name": request.method_name, "flow_id": request.flow_id, "mode": request.mode},
            },
            {
                "event_type": EventType.REQUEST_ASSIGNED,
                "actor": "system",
                "source": source,
                "target": request,
                "data": {
                    "assigned_to_email": request.assigned_to_email,
                    "step": request.assignment_step,
                    "rule_id": assignment.rule.pk if assignment.rule else None,
                    "rule_name": request.assigned_rule_name,
                    **({"condition_errors": list(assignment.problems)} if assignment.problems else {}),
                    **(pool.audit_data() if pool else {}),
                },
            },
        ]
    )
    rollups.count_created(request)  # last: the rollup row's lock is held only until COMMIT (SPEC §19)
    return request


@dataclass(frozen=True)
class Pool:
    """The approvers of a new request (SPEC §13), resolved: groups to their members' emails, the
    requester left out."""

    entries: list[str]
    seats: list[Seat]
    policy: str
    required: int | None
    veto: bool

    def audit_data(self) -> dict[str, Any]:
        return {
            "approvers": [seat.email for seat in self.seats],
            "groups": {seat.email: seat.via_group for seat in self.seats if seat.via_group},
            "policy": self.policy,
            "required": self.required,
            "veto": self.veto,
        }


def _pool_of(clean: RequestInput, assignment: Assignment) -> Pool | None:
    """The pool from the request's own fields, else from the pool rule that routed it, else (policy or
    requested_by given alone) a pool of the routed assignee; None for a classic request."""
    rule = assignment.rule if assignment.step == "rule_pool" else None
    if clean.approvers is not None:
        entries = clean.approvers
    elif rule is not None:
        entries = list(rule.approvers)
    elif clean.policy or clean.requested_by:
        entries = [assignment.email]
    else:
        return None
    policy = clean.policy or (rule.policy if rule is not None else "") or Policy.ANY
    required = clean.required if clean.required is not None else (rule.required if rule is not None else None)
    veto = clean.veto if rule is None or clean.policy else rule.veto
    try:
        seats = resolve_pool(entries, exclude=clean.requested_by)
        check_pool(seats, policy, required)
    except PoolError as exc:
        field = "required" if exc.code.startswith("required") else "approvers"
        if exc.code == "self_approval":
            field = "requested_by"
        raise InvalidInput({field: [exc.detail]}, code=exc.code) from None
    return Pool(list(entries), seats, policy, required, veto)
