"""Decisions of several approvers (SPEC §13): one row per approver, audited in the same transaction,
and the request resolved through `resolve._resolve` (its compare-and-set and one-to-one Resolution)
exactly when the policy is met.

Decisions on one request are serialised by a lock on the request's row (`select_for_update`; SQLite's
IMMEDIATE transactions serialise every writer anyway), so each decision counts all those committed
before it, and exactly one of them sees the policy met. The sweeper's timeout takes the same row in
its compare-and-set: whichever commits first wins, the other is refused (`not_pending`) or finds the
request already resolved. The database backs each step: one decision per approver and request
(a unique constraint), one resolution per request (its primary key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.lib.errors import HitlError, InvalidAnswer, NotAllowed, NotPending, Reassigned
from hitl.lib.forms import content_sha256, edited_fields
from hitl.lib.pool import Counted, evaluate
from hitl.models import Approver, Decision, HITLRequest, Mode, Policy, Resolution, Status
from hitl.results import empty_result
from hitl.services import rollups
from hitl.services.answers import Answer, interpret_answer


class DecisionRefused(HitlError):
    """Every refusal that is about who decides a pooled request (channels tell the sender why)."""


class NotAnApprover(DecisionRefused, NotAllowed):
    code = "not_an_approver"


class SelfApproval(DecisionRefused, NotAllowed):
    code = "self_approval"


class ApproverRequired(DecisionRefused, NotAllowed):
    """The integrating app (callback URL, API key) answered a pool request that needs a named approver."""

    code = "approver_required"


class AlreadyDecided(DecisionRefused, NotPending):
    code = "already_decided"


class SeatReplaced(DecisionRefused, Reassigned):
    """A capability of an approver who has been replaced since (SPEC §13: reassigning replaces one)."""


@dataclass(frozen=True)
class Capability:
    """Whom a reply token or magic link of a pooled request is for: the seat's email and version."""

    email: str
    version: int


def seat_for(request: HITLRequest, email: str) -> Approver | None:
    """The active seat of `email` on `request`, if any."""
    return Approver.objects.filter(request_id=request.pk, email=(email or "").strip().lower(), active=True).first()


def capability_for(request: HITLRequest, email: str) -> Capability:
    """What a capability (reply token, magic link) for `email` is bound to: for a pooled request the
    email's active seat and its version (a seat that ended answers nothing: version -1 never matches),
    for a classic request the assignee and the request's assignment version, as before."""
    if not request.has_pool:
        return Capability(request.assigned_to_email, request.assignment_version)
    seat = seat_for(request, email)
    return Capability(seat.email, seat.version) if seat else Capability(request.assigned_to_email, -1)


def addressed_to(request: HITLRequest, email: str) -> bool:
    """Whether `email` is whom the request's notifications go to: its assignee, or an active seat."""
    email = (email or "").strip().lower()
    if not request.has_pool:
        return bool(email) and request.assigned_to_email.lower() == email
    return seat_for(request, email) is not None


def decision_key(mode: str, fields: dict[str, Any]) -> str:
    """What a decision is counted by (hitl.lib.pool): the outcome, the chosen option ids, or in text
    mode one shared key."""
    if mode in (Mode.EMIT, Mode.APPROVAL):
        return str(fields.get("outcome") or "")
    if mode == Mode.CHOICES:
        return ",".join(sorted(str(c.get("id", "")) for c in fields.get("choices") or []))
    return ""


def _key_of(mode: str, decision: Decision) -> str:
    return decision_key(mode, {"outcome": decision.outcome, "choices": decision.choices})


def decisions_of(request: HITLRequest) -> list[Decision]:
    return list(Decision.objects.filter(request_id=request.pk).order_by("decided_at", "id"))


def pending_result(request: HITLRequest, decisions: list[Decision] | None = None) -> dict[str, Any]:
    """The result of a pooled request still pending: empty values plus the decisions so far."""
    return {**empty_result(request), "decisions": [d.as_result() for d in (decisions or decisions_of(request))]}


def record_decision(
    request_id: Any,
    answer: Answer,
    *,
    responder: str,
    source: str,
    actor: str,
    on_behalf_of: str = "",
    assignment_version: int | None = None,
    app: bool = False,
) -> Resolution:
    """Record one approver's decision on a pooled request; resolve it if the policy is now met.

    The approver is `on_behalf_of` when given (a manager or the integrating app speaking for a listed
    approver; the caller checked it may), else `responder`. `app` marks the integrating app (callback
    URL, full API key): without `on_behalf_of` it may decide only an `any` request, as itself.
    `assignment_version` is the seat version a capability (reply token, magic link) was minted for.

    Returns the Resolution when this decision resolved the request, else an unsaved one with status
    `pending` whose `result` holds the decisions so far. Refusals are audited and raise: NotPending,
    AlreadyDecided (409), NotAnApprover, SelfApproval, ApproverRequired (403), Reassigned (409),
    InvalidAnswer (400)."""
    from hitl.services.resolve import _refuse, _resolve

    # Emails are compared lower-case; the app's own name (callback:<deployment>) is kept as written.
    approver = on_behalf_of.strip().lower() if on_behalf_of else responder.strip()
    if "@" in approver:
        approver = approver.lower()
    refusal: HitlError | None = None
    with transaction.atomic():
        request = HITLRequest.objects.select_for_update(of=("self",)).select_related("deployment").get(pk=request_id)
        if not request.is_pending:
            refusal = NotPending("")
        else:
            refusal = _check(request, approver, on_behalf_of=on_behalf_of, version=assignment_version, app=app)
        if refusal is None:
            try:
                fields = interpret_answer(request, answer)
            except InvalidAnswer as exc:
                refusal = exc
        if refusal is None:
            return _decide(
                request,
                fields,
                answer,
                approver=approver,
                responder=responder,
                source=source,
                actor=actor,
                on_behalf_of=bool(on_behalf_of),
                resolve=_resolve,
            )
    # Refused outside the transaction, so the refusal's audit event commits (SPEC §10).
    if isinstance(refusal, NotPending) and not isinstance(refusal, DecisionRefused):
        _refuse(request, actor=actor, source=source, reason="not_pending")
    _audit_refusal(request, refusal, actor=actor, source=source, approver=approver)


def _check(
    request: HITLRequest, approver: str, *, on_behalf_of: str, version: int | None, app: bool
) -> HitlError | None:
    if request.requested_by and approver == request.requested_by.lower():
        return SelfApproval("The person who asked for this approval cannot approve it (no self-approval).")
    seat = seat_for(request, approver)
    if seat is None:
        if app and not on_behalf_of:
            if request.policy == Policy.ANY:
                return None  # the integrating app answers an `any` request as itself
            return ApproverRequired(
                "This request needs the decisions of named approvers: give on_behalf_of (an approver's email)."
            )
        if version is not None and Approver.objects.filter(request_id=request.pk, email=approver).exists():
            return SeatReplaced(
                "This approver was replaced after this link or email was sent: it no longer answers it.",
                extra={"status": Status.PENDING},
            )
        return NotAnApprover(f"{approver or 'This responder'} is not one of this request's approvers.")
    if version is not None and seat.version != version:
        return SeatReplaced(
            "This approver was replaced after this link or email was sent: it no longer answers it.",
            extra={"status": Status.PENDING},
        )
    earlier = Decision.objects.filter(request_id=request.pk, approver=approver).first()
    if earlier is not None:
        return AlreadyDecided(
            f"{approver} already decided this request ({earlier.outcome or 'answered'}, via {earlier.source}).",
            extra={"decision": earlier.as_result()},
        )
    return None


def _audit_refusal(request: HITLRequest, refusal: HitlError, *, actor: str, source: str, approver: str) -> NoReturn:
    record_event(
        EventType.RESPONSE_REFUSED,
        actor=actor,
        source=source,
        target=request,
        data={"reason": refusal.code, "approver": approver, "detail": refusal.detail},
    )
    raise refusal


def _decide(
    request: HITLRequest,
    fields: dict[str, Any],
    answer: Answer,
    *,
    approver: str,
    responder: str,
    source: str,
    actor: str,
    on_behalf_of: bool,
    resolve: Any,
) -> Resolution:
    now = timezone.now()
    decision = Decision.objects.create(
        request=request,
        approver=approver,
        outcome=fields["outcome"],
        feedback=fields["feedback"],
        text=fields["text"],
        choices=fields["choices"],
        edited_output=answer.edited_output,
        form=fields.get("form"),
        content_sha256=content_sha256(request.content if answer.edited_output is None else answer.edited_output),
        source=source,
        actor=actor,
        on_behalf_of=on_behalf_of,
        decided_at=now,
    )
    rollups.count_decision(request, decision)  # SPEC §19
    decisions = decisions_of(request)
    pool_size = Approver.objects.filter(request_id=request.pk, active=True).count()
    verdict = evaluate(
        [Counted(_key_of(request.mode, d), d.approver) for d in decisions],
        policy=request.policy,
        required=request.required,
        pool_size=max(pool_size, 1),
        mode=request.mode,
        veto=request.veto,
    )
    audit = {
        "approver": approver,
        "outcome": fields["outcome"],
        "feedback": fields["feedback"][:1000],
        "decided_at": decision.decided_at,
        "content_sha256": decision.content_sha256,
        **({"form": decision.form} if decision.form is not None else {}),
        **({"on_behalf_of": approver} if on_behalf_of else {}),
        "resolves": verdict is not None,
    }
    if verdict is None:
        from hitl.channels import webhook_outbox

        webhook_outbox.enqueue_deliveries(webhook_outbox.stage_decision_deliveries(request, decision, decisions))
        record_event(EventType.DECISION_RECORDED, actor=actor, source=source, target=request, data=audit)
        return Resolution(
            request=request,
            status=Status.PENDING,
            outcome=None,
            source=source,
            responder=approver,
            result=pending_result(request, decisions),
            created_at=now,
        )
    record_event(EventType.DECISION_RECORDED, actor=actor, source=source, target=request, data=audit)
    # The answer fields of the winning key: this decision's if it has it, else the earliest that has it.
    chosen = decision
    if _key_of(request.mode, decision) != verdict.key:
        chosen = next(d for d in decisions if _key_of(request.mode, d) == verdict.key)
    winning = {"outcome": chosen.outcome, "feedback": chosen.feedback, "text": chosen.text, "choices": chosen.choices}
    if chosen.form is not None:  # form mode (SPEC §14): the deciding approver's values
        winning.update(form=chosen.form, edited_fields=edited_fields(chosen.form, request.form_initial or {}))
    resolution: Resolution = resolve(
        request,
        status=Status.RESPONDED,
        source=source,
        responder=approver,
        actor=actor,
        fields=winning,
        edited_output=chosen.edited_output,
        extra_metadata={
            **answer.metadata,
            "policy": request.policy,
            "resolved_by": verdict.why,
            **({"on_behalf_of": approver} if on_behalf_of else {}),
        },
        event=EventType.RESPONSE_SUBMITTED,
        event_data={"policy": request.policy, "why": verdict.why, "decisions": len(decisions)},
        now=now,
        decisions=decisions,
    )
    return resolution


def refuse_decision(request_id: Any, *, actor: str, source: str, reason: str, approver: str = "") -> NoReturn:
    """Refuse (audited) a decision a surface found not allowed before it reached `record_decision`:
    `not_a_manager` (on_behalf_of without the manage permission)."""
    request = HITLRequest.objects.get(pk=request_id)
    refusal = NotAllowed("Only managers of the deployment may decide on behalf of an approver.", code=reason)
    _audit_refusal(request, refusal, actor=actor, source=source, approver=approver)
