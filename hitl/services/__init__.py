"""Every state change of a request, one function each (house style: verb_noun, atomic, audited).

All channels (email, dashboard, API, callback URL, Telegram, the timeout sweeper) resolve requests
through `respond_to_request` / `cancel_request`, so "exactly once" is enforced in one place: a
compare-and-set on `status` plus the one-to-one Resolution row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event, record_events
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.lib.addresses import clean_email
from hitl.lib.answers import approval_outcome, match_option, normalize, parse_approval, parse_emit
from hitl.lib.errors import InvalidAnswer, InvalidInput, NotAllowed, NotPending
from hitl.models import AssignmentStep, HITLRequest, Mode, Resolution, RoutingRule, Source, Status
from hitl.results import build_result
from hitl.routing.assign import choose_assignee
from hitl.services.deadlines import follow_up, next_in_chain, timeout_resolution
from hitl.services.request_input import validate_request_input

MAX_FEEDBACK = 50_000
_RESOLVED_VERBS: dict[str, str] = {
    Status.RESPONDED: "answered",
    Status.AUTO_RESPONDED: "auto-answered",
    Status.TIMED_OUT: "closed by its timeout",
    Status.CANCELLED: "cancelled",
}


@dataclass
class Answer:
    """An answer as a channel read it. Every field optional; `interpret_answer` decides."""

    outcome: str | None = None
    feedback: str = ""
    choice_id: str | list[str] | None = None
    text: str = ""
    edited_output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# --- create ----------------------------------------------------------------------------------------


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

    rules = list(deployment.routing_rules.filter(enabled=True).order_by("priority", "id"))
    assignment = choose_assignee(
        rules,
        creator_email=deployment.creator_email,
        method_name=clean.method_name,
        flow_name=clean.flow_name,
        state=clean.state,
        explicit=clean.assign_to or None,
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
        requested_assignee=clean.assign_to,
        assigned_to_email=assignment.email,
        assigned_rule=assignment.rule,
        assigned_rule_name=assignment.rule.name if assignment.rule else "",
        assignment_step=assignment.step,
        due_at=now + timedelta(seconds=timeout) if timeout else None,
        sla_due_at=(now + timedelta(minutes=deployment.sla_target_minutes) if deployment.sla_target_minutes else None),
        reminder_due_at=follow.reminder_due(now),
        escalation_due_at=follow.escalation_due(now, level=0),
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
                },
            },
        ]
    )
    return request


# --- answer ----------------------------------------------------------------------------------------


def _pick_choices(request: HITLRequest, answer: Answer) -> list[dict[str, Any]]:
    wanted = answer.choice_id
    if wanted is None or wanted == "" or wanted == []:
        first_line = (answer.feedback or answer.text or "").strip().splitlines()
        wanted = first_line[0] if first_line else None
    if wanted is None:
        raise InvalidAnswer(
            "Pick one of the options.", code="choice_required", extra={"options": _option_list(request)}
        )
    if isinstance(wanted, str):
        wanted = [part for part in (p.strip() for p in wanted.split(",")) if part] if request.multiple else [wanted]
    if not isinstance(wanted, list) or not all(isinstance(w, str | int) for w in wanted):
        raise InvalidAnswer("choice_id must be an option id or a list of them.", code="invalid_choice")
    if len(wanted) > 1 and not request.multiple:
        raise InvalidAnswer("This request takes exactly one choice.", code="invalid_choice")
    chosen: list[dict[str, Any]] = []
    for item in wanted:
        option = _find_option(request.options, str(item))
        if option is None:
            raise InvalidAnswer(
                f"'{item}' is not one of the options.", code="invalid_choice", extra={"options": _option_list(request)}
            )
        if option not in chosen:
            chosen.append(option)
    return chosen


def _find_option(options: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """By id (option_2), number (2 or #2), label or value, case- and punctuation-insensitively."""
    key = key.strip()
    number = key.lstrip("#").rstrip(".):")
    if number.isdigit() and 1 <= int(number) <= len(options):
        return options[int(number) - 1]
    wanted = normalize(key)
    for option in options:
        if (
            option["id"] == key
            or normalize(str(option["label"])) == wanted
            or normalize(str(option["value"])) == wanted
        ):
            return option
    return None


def _option_list(request: HITLRequest) -> list[str]:
    if request.mode == Mode.CHOICES:
        return [f"{i}. {o['label']}" for i, o in enumerate(request.options, start=1)]
    return request.option_names()


def interpret_answer(request: HITLRequest, answer: Answer) -> dict[str, Any]:
    """Validate an answer against the request's mode; return the result's answer fields.

    Raises InvalidAnswer (nothing is recorded against the request) when it does not fit.
    """
    feedback = (answer.feedback or "").strip()
    if len(feedback) > MAX_FEEDBACK or len(answer.text or "") > MAX_FEEDBACK:
        raise InvalidAnswer(f"Feedback is limited to {MAX_FEEDBACK} characters.", code="too_long")
    if answer.edited_output is not None:
        if not request.editable:
            raise InvalidAnswer("This request does not allow editing its content.", code="not_editable")
        if not isinstance(answer.edited_output, str) or len(answer.edited_output) > 500_000:
            raise InvalidAnswer("edited_output must be text of at most 500,000 characters.", code="invalid")
    fields: dict[str, Any] = {"outcome": None, "feedback": feedback, "text": "", "choices": []}

    if request.mode == Mode.EMIT:
        if answer.outcome:
            outcome = match_option(answer.outcome, request.emit_options)
            if outcome is None:
                raise InvalidAnswer(
                    f"'{answer.outcome}' is not an option; choose one of: {', '.join(request.emit_options)}.",
                    code="invalid_outcome",
                    extra={"options": request.emit_options},
                )
            fields["outcome"] = outcome
        else:
            parsed = parse_emit(feedback, request.emit_options)
            fields.update(outcome=parsed.outcome, feedback=parsed.feedback)
            if parsed.outcome is None and not feedback:
                raise InvalidAnswer(
                    f"Empty answer; choose one of: {', '.join(request.emit_options)}, or write feedback.",
                    code="empty_answer",
                    extra={"options": request.emit_options},
                )
    elif request.mode == Mode.APPROVAL:
        if answer.outcome:
            outcome = approval_outcome(answer.outcome)
        else:
            parsed = parse_approval(feedback)
            outcome = parsed.outcome
            if outcome:
                fields["feedback"] = parsed.feedback
        if outcome is None:
            raise InvalidAnswer(
                "Approve or reject: answer 'approved' or 'rejected'.",
                code="invalid_outcome",
                extra={"options": ["approved", "rejected"]},
            )
        fields["outcome"] = outcome
    elif request.mode == Mode.CHOICES:
        fields["choices"] = _pick_choices(request, answer)
        if answer.choice_id in (None, "", []):
            # The choice was read from the first line of the feedback; the rest is the comment.
            fields["feedback"] = "\n".join(feedback.splitlines()[1:]).strip()
    elif request.mode == Mode.TEXT:
        typed = (answer.text or "").strip() or feedback
        if not typed:
            raise InvalidAnswer("This request needs a typed answer.", code="text_required")
        fields.update(text=typed, feedback=feedback or typed)
    return fields


def respond_to_request(
    request_id: Any,
    answer: Answer,
    *,
    responder: str,
    source: str,
    actor: str | None = None,
) -> Resolution:
    """Answer a pending request exactly once. Raises NotPending for the losers, InvalidAnswer for
    answers that do not fit; both are audited as refused."""
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    actor = actor or responder
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    try:
        fields = interpret_answer(request, answer)
    except InvalidAnswer as exc:
        record_event(
            EventType.RESPONSE_REFUSED,
            actor=actor,
            source=source,
            target=request,
            data={"reason": exc.code, "detail": exc.detail},
        )
        raise
    return _resolve(
        request,
        status=Status.RESPONDED,
        source=source,
        responder=responder,
        actor=actor,
        fields=fields,
        edited_output=answer.edited_output,
        extra_metadata=answer.metadata,
        event=EventType.RESPONSE_SUBMITTED,
    )


def cancel_request(request_id: Any, *, actor: str, source: str, reason: str = "") -> Resolution:
    """Cancel a pending request (by the flow, an API client or a manager)."""
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    return _resolve(
        request,
        status=Status.CANCELLED,
        source=source,
        responder=actor,
        actor=actor,
        fields={"outcome": None, "feedback": reason, "text": "", "choices": []},
        event=EventType.REQUEST_CANCELLED,
    )


def _resolve(
    request: HITLRequest,
    *,
    status: str,
    source: str,
    responder: str,
    actor: str,
    fields: dict[str, Any],
    event: str,
    edited_output: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Resolution:
    now = now or timezone.now()
    with transaction.atomic():
        # Compare-and-set: of any number of concurrent writers, exactly one sees a row count of 1.
        won = HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING).update(
            status=status, resolved_at=now, updated_at=now
        )
        if won:
            result = build_result(
                request,
                outcome=fields["outcome"],
                feedback=fields["feedback"],
                text=fields["text"],
                choices=fields["choices"],
                source=source,
                responder=responder,
                responded_at=now.isoformat().replace("+00:00", "Z"),
                edited_output=edited_output,
                extra_metadata=extra_metadata,
            )
            resolution = Resolution.objects.create(
                request=request,
                status=status,
                outcome=fields["outcome"],
                source=source,
                responder=responder,
                result=result,
                answered_within_sla=(now <= request.sla_due_at) if request.sla_due_at else None,
                created_at=now,
            )
            announce(request, Event.RESOLVED_BY_STATUS[status])  # before the audit append: see create_request
            record_event(
                event,
                actor=actor,
                source=source,
                target=request,
                data={"status": status, "outcome": fields["outcome"], "responder": responder},
            )
    if not won:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    request.status = status
    request.resolved_at = now
    return resolution


def describe_resolution(resolution: Resolution) -> str:
    """'This request was already answered by alice@x via email at 2026-…Z.' (API errors, error emails)."""
    verb = _RESOLVED_VERBS.get(resolution.status, resolution.status)
    when = resolution.created_at.isoformat().replace("+00:00", "Z")
    who = resolution.responder or resolution.source
    return f"This request was already {verb} by {who} via {resolution.source} at {when}."


def _refuse(request: HITLRequest, *, actor: str, source: str, reason: str) -> None:
    """Record a refused answer and raise NotPending saying who got there first."""
    resolution = Resolution.objects.filter(request_id=request.pk).first()
    extra: dict[str, Any] = {"status": resolution.status if resolution else request.status}
    detail = "This request is no longer pending."
    if resolution is not None:
        extra.update(
            resolved_by=resolution.responder,
            resolved_via=resolution.source,
            resolved_at=resolution.created_at.isoformat().replace("+00:00", "Z"),
        )
        detail = describe_resolution(resolution)
    record_event(
        EventType.RESPONSE_REFUSED, actor=actor, source=source, target=request, data={"reason": reason, **extra}
    )
    raise NotPending(detail, extra=extra)


# --- reassign --------------------------------------------------------------------------------------


@transaction.atomic
def reassign_request(
    request_id: Any, *, email: str, actor: str, note: str = "", source: str = Source.API
) -> HITLRequest:
    new_email = clean_email(email)
    if not new_email:
        raise InvalidInput({"email": ["Must be a valid email address."]})
    request = HITLRequest.objects.select_for_update().get(pk=request_id)
    if not request.is_pending or not _reassign(
        request, new_email=new_email, actor=actor, source=source, step=AssignmentStep.REASSIGNED, data={"note": note}
    ):
        _refuse(request, actor=actor, source=source, reason="not_pending")
    return request


@transaction.atomic
def delegate_request(
    request_id: Any, *, email: str, actor: str, note: str = "", source: str = Source.DASHBOARD
) -> HITLRequest:
    """The assignee hands a pending request over to someone else (beyond the seeds, SPEC §12).

    `actor` must be the current assignee's email; the compare-and-set includes it, so a delegation
    racing a manager's reassignment cannot take the request back from its new assignee.
    """
    new_email = clean_email(email)
    if not new_email:
        raise InvalidInput({"email": ["Must be a valid email address."]})
    request = HITLRequest.objects.select_for_update().get(pk=request_id)
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    current = request.assigned_to_email.lower()
    if actor.lower() != current:
        raise NotAllowed("Only the assignee can delegate this request.", code="not_assignee")
    if new_email == current:
        raise InvalidInput({"email": ["The request is already assigned to this address."]})
    if not _reassign(
        request,
        new_email=new_email,
        actor=actor,
        source=source,
        step=AssignmentStep.DELEGATED,
        data={"note": note, "delegated": True},
        guard={"assigned_to_email": request.assigned_to_email},
    ):
        raise NotAllowed("The request was reassigned meanwhile.", code="not_assignee")
    return request


def _reassign(
    request: HITLRequest,
    *,
    new_email: str,
    actor: str,
    source: str,
    step: str,
    data: dict[str, Any],
    guard: dict[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
) -> bool:
    """The one reassignment write, for managers and for escalation: a compare-and-set on `pending`
    (plus `guard`), the audit event, and the REASSIGNED announcement. False if the set lost."""
    previous = request.assigned_to_email
    new_email = new_email.strip().lower()
    won = HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING, **(guard or {})).update(
        assigned_to_email=new_email, assignment_step=step, updated_at=timezone.now(), **(updates or {})
    )
    if not won:
        return False
    request.refresh_from_db()
    record_event(
        EventType.REQUEST_REASSIGNED,
        actor=actor,
        source=source,
        target=request,
        data={"from": previous, "to": new_email, **data},
    )
    announce(request, Event.REASSIGNED)
    return True


# --- deadlines (run by hitl.sweeper) ---------------------------------------------------------------


def expire_request(request_id: Any, *, now: datetime | None = None) -> Resolution | None:
    """Apply the request's `on_timeout` once its deadline has passed (SPEC §5), through the same
    compare-and-set as every answer: `default` with a default outcome → auto_responded with that
    outcome; otherwise (`fail`, `continue`, or no default outcome) → timed_out, and the flow decides.

    None when the request is not due (never early) or no longer pending. A human answer committed
    in the same instant makes this raise NotPending (audited as a refused answer), never a second
    resolution.
    """
    now = now or timezone.now()
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    if not request.is_pending or request.due_at is None or request.due_at > now:
        return None
    how = timeout_resolution(request)
    return _resolve(
        request,
        status=how.status,
        source=Source.AUTO,
        responder="system",
        actor="system",
        fields={"outcome": how.outcome, "feedback": "", "text": "", "choices": []},
        event=how.event,
        extra_metadata=how.metadata,
        now=now,
    )


@transaction.atomic
def mark_overdue(request_id: Any, *, now: datetime | None = None) -> bool:
    """Flag a pending request whose SLA due time has passed (once)."""
    now = now or timezone.now()
    won = HITLRequest.objects.filter(pk=request_id, status=Status.PENDING, overdue=False, sla_due_at__lte=now).update(
        overdue=True, updated_at=now
    )
    if won:
        request = HITLRequest.objects.get(pk=request_id)
        record_event(
            EventType.REQUEST_OVERDUE,
            actor="system",
            source=Source.AUTO,
            target=request,
            data={"sla_due_at": request.sla_due_at, "assigned_to_email": request.assigned_to_email},
        )
    return bool(won)


@transaction.atomic
def remind_assignee(request_id: Any, *, now: datetime | None = None) -> bool:
    """Ask the channels to remind the assignee of a pending request (once: the due time is cleared
    by the same compare-and-set that claims the reminder)."""
    now = now or timezone.now()
    won = HITLRequest.objects.filter(pk=request_id, status=Status.PENDING, reminder_due_at__lte=now).update(
        reminder_due_at=None, reminder_sent_at=now, updated_at=now
    )
    if not won:
        return False
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    record_event(
        EventType.NOTIFICATION_SENT,
        actor="system",
        source=Source.AUTO,
        target=request,
        data={"action": "reminder_requested", "to": request.assigned_to_email},
    )
    announce(request, Event.REMINDER)
    return True


@transaction.atomic
def escalate_request(request_id: Any, *, now: datetime | None = None) -> bool:
    """Take the next step of the escalation chain if it is due: reassign to the chain's next email
    (audited and announced like a manager's reassignment) and set when the step after it is due.
    Each step happens once: the compare-and-set includes the step's level and due time."""
    now = now or timezone.now()
    request = HITLRequest.objects.select_related("deployment", "assigned_rule").get(pk=request_id)
    if not request.is_pending or request.escalation_due_at is None or request.escalation_due_at > now:
        return False
    config = follow_up(request.deployment, request.assigned_rule)
    email, level = next_in_chain(config.chain, request.escalation_level, request.assigned_to_email)
    guard = {"escalation_level": request.escalation_level, "escalation_due_at": request.escalation_due_at}
    updates = {"escalation_level": level, "escalation_due_at": config.escalation_due(now, level)}
    if email is None:
        # The chain is used up (or was emptied meanwhile): stop escalating this request.
        HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING, **guard).update(
            escalation_level=level, escalation_due_at=None
        )
        return False
    return _reassign(
        request,
        new_email=email,
        actor="system",
        source=Source.AUTO,
        step=AssignmentStep.ESCALATED,
        data={"reason": "escalation", "level": level},
        guard=guard,
        updates=updates,
    )


# --- routing rules ---------------------------------------------------------------------------------


@transaction.atomic
def add_routing_rule(deployment: Deployment, *, actor: str, **fields: Any) -> RoutingRule:
    """Create a validated routing rule (raises django ValidationError with per-field messages)."""
    rule = RoutingRule(deployment=deployment, **fields)
    rule.full_clean()
    rule.save()
    record_event(EventType.RULE_CHANGED, actor=actor, target=rule, data={"name": rule.name, "created": True})
    return rule


# --- notifications ---------------------------------------------------------------------------------


def resend_notification(request_id: Any, *, actor: str, source: str) -> HITLRequest:
    """Send the assignee the notification again (fresh reply token and magic link). Pending only;
    it always goes to the assigned address, whoever asks for it."""
    request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    with transaction.atomic():
        record_event(
            EventType.NOTIFICATION_SENT,
            actor=actor,
            source=source,
            target=request,
            data={"action": "resend_requested", "to": request.assigned_to_email},
        )
        announce(request, Event.RESEND)
    return request
