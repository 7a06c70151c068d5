"""Every way a request leaves `pending` (SPEC §2, §5): an answer, a cancellation, its timeout, and the
sweeper's timeouts in bulk. Exactly once is enforced here and only here: a compare-and-set on `status`
(the row count decides who won) plus the one-to-one Resolution row; every loser is refused and audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event, record_events
from hitl.channels.announce import announce
from hitl.channels.base import Event
from hitl.lib.errors import InvalidAnswer, NotPending, Reassigned
from hitl.lib.forms import content_sha256
from hitl.models import Decision, HITLRequest, OnTimeout, Resolution, Source, Status
from hitl.results import build_result
from hitl.services import rollups
from hitl.services.answers import Answer, interpret_answer

_RESOLVED_VERBS: dict[str, str] = {
    Status.RESPONDED: "answered",
    Status.AUTO_RESPONDED: "auto-answered",
    Status.TIMED_OUT: "closed by its timeout",
    Status.CANCELLED: "cancelled",
}


def respond_to_request(
    request_id: Any | HITLRequest,
    answer: Answer,
    *,
    responder: str,
    source: str,
    actor: str | None = None,
    on_behalf_of: str = "",
    assignment_version: int | None = None,
    app: bool = False,
) -> Resolution:
    """Answer a pending request exactly once. Raises NotPending for the losers, InvalidAnswer for
    answers that do not fit; both are audited as refused.

    `on_behalf_of` names the assignee when someone else entitled to answer (a manager who also holds
    respond) answers for them: kept in the result's metadata and the audit event (SPEC §10).

    `assignment_version` is given by answers through a capability of one assignment (a magic link, a
    reply token): the compare-and-set then also requires it, so a reassignment that commits first ends
    the capability even while its answer is in flight (Reassigned, audited).

    A request with several approvers (SPEC §13) takes the answer as one approver's decision
    (`hitl.services.decisions`); it resolves, through `_resolve` below, once its policy is met. `app`
    marks the integrating app (callback URL, API key), which may answer such a request only as §13 and
    the README say."""
    # A caller that has just read the request (with its deployment) hands it over: one read less. Its
    # state may be a moment old, as a read here would be; the compare-and-set in _resolve decides.
    if isinstance(request_id, HITLRequest):
        request = request_id
    else:
        request = HITLRequest.objects.select_related("deployment").get(pk=request_id)
    actor = actor or responder
    if request.has_pool:
        from hitl.services.decisions import record_decision

        return record_decision(
            request.pk,
            answer,
            responder=responder,
            source=source,
            actor=actor,
            on_behalf_of=on_behalf_of,
            assignment_version=assignment_version,
            app=app,
        )
    if not request.is_pending:
        _refuse(request, actor=actor, source=source, reason="not_pending")
    if assignment_version is not None and assignment_version != request.assignment_version:
        _refuse_reassigned(request, actor=actor, source=source)
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
        extra_metadata={**answer.metadata, **({"on_behalf_of": on_behalf_of} if on_behalf_of else {})},
        event=EventType.RESPONSE_SUBMITTED,
        event_data={"on_behalf_of": on_behalf_of} if on_behalf_of else None,
        guard={} if assignment_version is None else {"assignment_version": assignment_version},
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
    event_data: dict[str, Any] | None = None,
    guard: dict[str, Any] | None = None,
    decisions: list[Decision] | None = None,
) -> Resolution:
    now = now or timezone.now()
    with transaction.atomic():
        # Compare-and-set: of any number of concurrent writers, exactly one sees a row count of 1.
        won = HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING, **(guard or {})).update(
            status=status, resolved_at=now, updated_at=now
        )
        if won:
            resolution = _resolution_row(
                request,
                status=status,
                source=source,
                responder=responder,
                now=now,
                fields=fields,
                edited_output=edited_output,
                extra_metadata=extra_metadata,
                decisions=decisions,
            )
            resolution.save(force_insert=True)
            announce(request, Event.RESOLVED_BY_STATUS[status])  # before the audit append: see create_request
            record_event(
                event,
                actor=actor,
                source=source,
                target=request,
                data={
                    "status": status,
                    "outcome": fields["outcome"],
                    "responder": responder,
                    **_form_audit(resolution.result),
                    **(event_data or {}),
                },
            )
            rollups.count_resolved(request, resolution)  # SPEC §19, last in the transaction
    if not won:
        if guard and HITLRequest.objects.filter(pk=request.pk, status=Status.PENDING).exists():
            _refuse_reassigned(request, actor=actor, source=source)
        _refuse(request, actor=actor, source=source, reason="not_pending")
    request.status = status
    request.resolved_at = now
    return resolution


def _resolution_row(
    request: HITLRequest,
    *,
    status: str,
    source: str,
    responder: str,
    now: datetime,
    fields: dict[str, Any],
    edited_output: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    decisions: list[Decision] | None = None,
) -> Resolution:
    """The (unsaved) one-to-one row of a won compare-and-set, with the §2 result (and a pooled
    request's `decisions`, SPEC §13, however it resolved: by its policy, timeout or cancellation)."""
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
        form=fields.get("form"),
        edited_fields=fields.get("edited_fields"),
        content_sha256=content_sha256(request.content if edited_output is None else edited_output),
    )
    if request.has_pool:
        if decisions is None:
            decisions = list(Decision.objects.filter(request_id=request.pk).order_by("decided_at", "id"))
        result["decisions"] = [decision.as_result() for decision in decisions]
    return Resolution(
        request=request,
        status=status,
        outcome=fields["outcome"],
        source=source,
        responder=responder,
        result=result,
        answered_within_sla=(now <= request.sla_due_at) if request.sla_due_at else None,
        created_at=now,
    )


def _form_audit(result: dict[str, Any]) -> dict[str, Any]:
    """What the resolution's audit event adds (SPEC §14): the content's hash, a form's values."""
    extra: dict[str, Any] = {"content_sha256": result.get("content_sha256")}
    if result.get("form") is not None:
        extra.update(form=result["form"], edited_fields=result.get("edited_fields", []))
    return extra


def _timeout_fields(how: TimeoutResolution) -> dict[str, Any]:
    return {"outcome": how.outcome, "feedback": "", "text": "", "choices": []}


def describe_resolution(resolution: Resolution) -> str:
    """'This request was already answered by alice@x via email at 2026-…Z.' (API errors, error emails)."""
    verb = _RESOLVED_VERBS.get(resolution.status, resolution.status)
    when = resolution.created_at.isoformat().replace("+00:00", "Z")
    who = resolution.responder or resolution.source
    return f"This request was already {verb} by {who} via {resolution.source} at {when}."


def _refuse(request: HITLRequest, *, actor: str, source: str, reason: str, action: str = "") -> NoReturn:
    """Record a refused answer (or reassignment, delegation: `action`) and raise NotPending saying who
    got there first."""
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
        EventType.RESPONSE_REFUSED,
        actor=actor,
        source=source,
        target=request,
        data={"reason": reason, **({"action": action} if action else {}), **extra},
    )
    raise NotPending(detail, extra=extra)


def _refuse_reassigned(request: HITLRequest, *, actor: str, source: str) -> NoReturn:
    """Record an answer through a capability of an earlier assignment, and raise Reassigned."""
    record_event(
        EventType.RESPONSE_REFUSED,
        actor=actor,
        source=source,
        target=request,
        data={"reason": "reassigned"},
    )
    raise Reassigned(
        "This request was reassigned after this link or email was sent: it no longer answers it.",
        extra={"status": Status.PENDING},
    )


@dataclass(frozen=True)
class TimeoutResolution:
    """How a request whose deadline passed resolves (SPEC §5): `default` with a default outcome →
    auto_responded with that outcome; otherwise (`fail`, `continue`, or no default outcome) → timed_out,
    and the flow decides from the result's metadata."""

    status: str
    event: str
    outcome: str | None
    metadata: dict[str, Any]


def timeout_resolution(request: HITLRequest) -> TimeoutResolution:
    if request.on_timeout == OnTimeout.DEFAULT and request.default_outcome:
        return TimeoutResolution(Status.AUTO_RESPONDED, EventType.AUTO_RESPONDED, request.default_outcome, {})
    return TimeoutResolution(
        Status.TIMED_OUT, EventType.TIMED_OUT, None, {"timed_out": True, "on_timeout": request.on_timeout}
    )


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
        fields=_timeout_fields(how),
        event=how.event,
        extra_metadata=how.metadata,
        now=now,
    )


class LostRace(Exception):
    """`expire_due_requests` could not move every locked row: the whole chunk rolls back."""


@transaction.atomic
def expire_due_requests(ids: list[Any], now: datetime) -> int:
    """Resolve the due requests among `ids` by their on-timeout rule, in one transaction; return how many.

    The same resolution as `expire_request` (same result, Resolution row, audit event and announcement
    per request), with the round trips shared: the pending rows are locked (rows an answer is writing
    are skipped: the answer wins, or the next batch finds them), then one compare-and-set per status
    moves them all and must move every one (else LostRace and nothing is written), and the Resolution
    rows go in one insert (their primary key is the request: a second one is refused by the database).
    The sweeper calls it a chunk at a time and falls back to `expire_request` one by one.
    """
    requests = list(
        HITLRequest.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("deployment")
        .filter(pk__in=ids, status=Status.PENDING, due_at__lte=now)
        .order_by("pk")  # one lock order for every sweep
    )
    if not requests:
        return 0
    plans = [(request, timeout_resolution(request)) for request in requests]
    for status in {how.status for _, how in plans}:
        group = [request.pk for request, how in plans if how.status == status]
        # Compare-and-set, as in _resolve; under the row locks it must win every row.
        won = HITLRequest.objects.filter(pk__in=group, status=Status.PENDING).update(
            status=status, resolved_at=now, updated_at=now
        )
        if won != len(group):
            raise LostRace(f"{won} of {len(group)}")
    resolutions = Resolution.objects.bulk_create(
        _resolution_row(
            request,
            status=how.status,
            source=Source.AUTO,
            responder="system",
            now=now,
            fields=_timeout_fields(how),
            extra_metadata=how.metadata,
        )
        for request, how in plans
    )
    record_events(
        [
            {
                "event_type": how.event,
                "actor": "system",
                "source": Source.AUTO,
                "target": request,
                "data": {"status": how.status, "outcome": how.outcome, "responder": "system"},
            }
            for request, how in plans
        ]
    )
    for request, how in plans:
        announce(request, Event.RESOLVED_BY_STATUS[how.status])
    rollups.count_resolved_many(zip((request for request, _ in plans), resolutions, strict=True))  # SPEC §19
    for request, how in plans:
        request.status, request.resolved_at = how.status, now
    return len(plans)
