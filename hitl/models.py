"""Review requests, their one resolution, and the routing rules that assign them (SPEC §2, §3)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.lib.access import (
    RESPOND_PERM,
    Action,
    ApiKeyPrincipal,
    LinkPrincipal,
    deployments_for,
    request_scope,
)
from accounts.models import Deployment
from hitl.lib import crypto
from hitl.lib.addresses import clean_email, email_list_error
from hitl.rollup_models import Grain, Rollup, RollupAnswer, RollupApproval, RollupTime  # noqa: F401 - registers them
from hitl.routing.conditions import ConditionError, parse_conditions


class Mode(models.TextChoices):
    EMIT = "emit", "Emit options"
    APPROVAL = "approval", "Approve / reject"
    CHOICES = "choices", "Choices"
    TEXT = "text", "Text"
    FORM = "form", "Form"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    TELEGRAM = "telegram", "Telegram"
    SLACK = "slack", "Slack"


class OnTimeout(models.TextChoices):
    DEFAULT = "default", "Answer with the default outcome"
    FAIL = "fail", "Fail the flow"
    CONTINUE = "continue", "Continue with an empty result"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RESPONDED = "responded", "Responded"
    AUTO_RESPONDED = "auto_responded", "Auto-responded"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = frozenset({Status.PENDING})
TERMINAL_STATUSES = frozenset({Status.RESPONDED, Status.AUTO_RESPONDED, Status.TIMED_OUT, Status.CANCELLED})


class Source(models.TextChoices):
    EMAIL = "email", "Email"
    DASHBOARD = "dashboard", "Dashboard"
    API = "api", "API"
    TELEGRAM = "telegram", "Telegram"
    SLACK = "slack", "Slack"
    AUTO = "auto", "Auto"


class Policy(models.TextChoices):
    """How several approvers resolve a request (SPEC §13). Blank on a request means the classic single
    assignee (no approver pool, no decision rows)."""

    ANY = "any", "Any one approver"
    ALL = "all", "Every approver"
    QUORUM = "quorum", "A quorum (required) of approvers"


class AssignmentStep(models.TextChoices):
    EXPLICIT = "explicit", "assign_to given with the request"
    RULE_INPUT = "rule_input", "Rule: assign_from_input (flow state)"
    RULE_EMAIL = "rule_email", "Rule: assign_to_email"
    CREATOR = "creator", "Deployment creator (fallback)"
    REASSIGNED = "reassigned", "Reassigned by a manager"
    ESCALATED = "escalated", "Escalated (no answer in time)"
    DELEGATED = "delegated", "Delegated by the assignee"
    CONDITION_ERROR = "condition_error", "A rule's condition could not be evaluated (deployment creator)"
    POOL = "pool", "approvers given with the request"
    RULE_POOL = "rule_pool", "Rule: approvers (a pool)"


class PoolError(Exception):
    """A pool that cannot decide anything (SPEC §13 "bad input"); `code` is stable."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Seat:
    email: str
    via_group: str = ""


def resolve_pool(entries: Any, *, exclude: str = "") -> list[Seat]:
    """Emails and `group:<Django group name>` entries → the pool's seats, in order, each email once.
    Groups resolve to their active members' emails now (at create, recorded on the seats). `exclude`
    (the requester) is left out. Raises PoolError with a stable code."""
    from django.contrib.auth.models import Group

    if not isinstance(entries, list) or not entries:
        raise PoolError("empty_pool", "approvers must be a non-empty list of emails and group:<name> entries.")
    if len(entries) > MAX_POOL:
        raise PoolError("pool_too_large", f"At most {MAX_POOL} approvers entries.")
    seats: list[Seat] = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise PoolError("invalid_approver", "Every approver is an email or group:<name>.")
        entry = entry.strip()
        if entry.lower().startswith("group:"):
            name = entry[len("group:") :].strip()
            group = Group.objects.filter(name=name).first()
            if group is None:
                raise PoolError("unknown_group", f"There is no group named {name!r}.")
            emails = sorted(
                {
                    e.strip().lower()
                    for e in group.user_set.filter(is_active=True).values_list("email", flat=True)
                    if clean_email(e)
                }
            )
            if not emails:
                raise PoolError("empty_group", f"The group {name!r} has no members with an email address.")
            found = [Seat(e, f"group:{name}") for e in emails]
        else:
            email = clean_email(entry)
            if not email:
                raise PoolError("invalid_approver", f"{entry!r} is not a valid email address (or group:<name>).")
            found = [Seat(email.lower())]
        for seat in found:
            if seat.email not in seen:
                seen.add(seat.email)
                seats.append(seat)
    if exclude:
        kept = [seat for seat in seats if seat.email != exclude.lower()]
        if not kept:
            raise PoolError(
                "self_approval", "requested_by is the only approver: nobody else could decide (no self-approval)."
            )
        seats = kept
    if len(seats) > MAX_POOL:
        raise PoolError("pool_too_large", f"At most {MAX_POOL} approvers.")
    return seats


def check_pool(seats: list[Seat], policy: str, required: int | None) -> None:
    if policy not in Policy.values:
        raise PoolError("invalid_policy", f"policy must be one of: {', '.join(Policy.values)}.")
    if policy == Policy.QUORUM:
        if required is None:
            raise PoolError("required_missing", "quorum needs required (how many approvers must agree).")
        if required < 1 or required > len(seats):
            raise PoolError(
                "required_too_large", f"required must be between 1 and the number of approvers ({len(seats)})."
            )
    elif required is not None:
        raise PoolError("required_unused", "required is only used with policy quorum.")


MAX_POOL = 100


class RoutingRule(models.Model):
    """Picks the assignee of a new request: first enabled match by (priority, id) wins (SPEC §3)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="routing_rules")
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=100, help_text="Lower runs first; ties go by creation order.")
    method_pattern = models.CharField(
        max_length=200,
        default="*",
        help_text="Shell-style: approve_* (any characters), review_? (one character), validate_payment (exact).",
    )
    flow_pattern = models.CharField(
        max_length=200, blank=True, help_text="Optional shell-style pattern on the flow name."
    )
    conditions = models.TextField(
        blank=True,
        help_text="Optional, one per line, all must hold: <dotted.path> <op> <JSON value>; "
        'ops ==, !=, <, <=, >, >=, in. E.g. amount >= 10000 or region in ["eu", "uk"].',
    )
    assign_from_input = models.CharField(
        max_length=200, blank=True, help_text="Dotted path into the flow state, e.g. account.owner.email."
    )
    assign_to_email = models.EmailField(blank=True)
    approvers = models.JSONField(
        default=list,
        blank=True,
        help_text='Several approvers instead of one assignee (SPEC §13): a list of emails and "group:<name>".',
    )
    policy = models.CharField(
        max_length=10, choices=Policy.choices, blank=True, help_text="With approvers: any (default), all, quorum."
    )
    required = models.PositiveSmallIntegerField(null=True, blank=True, help_text="quorum: how many must agree.")
    veto = models.BooleanField(default=True, help_text="approval mode: one rejection resolves it at once.")
    reminder_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the deployment's reminder for requests this rule assigns."
    )
    escalation_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the deployment's escalation interval."
    )
    escalation_emails = models.JSONField(
        default=list, blank=True, help_text="Overrides the deployment's escalation chain (a list of emails)."
    )
    telegram_chat_id = models.CharField(
        max_length=64, blank=True, help_text="Overrides the deployment's Telegram chat for requests this rule assigns."
    )
    telegram_bot_token = crypto.EncryptedTextField(
        blank=True, help_text="Overrides the deployment's Telegram bot (encrypted at rest; set in the admin)."
    )
    slack_channel_id = models.CharField(
        max_length=32, blank=True, help_text="Overrides the deployment's Slack channel for requests this rule assigns."
    )
    slack_bot_token = crypto.EncryptedTextField(
        blank=True,
        help_text="With the signing secret, overrides the deployment's Slack app (encrypted at rest; set in "
        "the admin).",
    )
    slack_signing_secret = crypto.EncryptedTextField(
        blank=True, help_text="The signing secret of this rule's own Slack app (encrypted at rest; set in the admin)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]
        indexes = [models.Index(fields=["deployment", "enabled", "priority", "id"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        if not self.assign_from_input and not self.assign_to_email and not self.approvers:
            errors["assign_to_email"] = "Give an email, a state path (assign_from_input), approvers, or both."
        if self.approvers or self.policy or self.required:
            try:
                check_pool(resolve_pool(self.approvers), self.policy or Policy.ANY, self.required)
            except PoolError as exc:
                errors["approvers" if exc.code != "required_too_large" else "required"] = f"{exc.detail} ({exc.code})"
        try:
            parse_conditions(self.conditions)
        except ConditionError as exc:
            errors["conditions"] = str(exc)
        if not self.method_pattern.strip():
            errors["method_pattern"] = "Use * to match every method."
        if chain_error := email_list_error(self.escalation_emails):
            errors["escalation_emails"] = chain_error
        if errors:
            raise ValidationError(errors)


def _seat_scope(principal: Any, action: Action) -> Q | None:
    """What an approver of a pooled request may see and answer besides `request_scope` (SPEC §13): the
    requests where they hold an active seat (a respond permission on the deployment, or a magic link of
    that very seat). None when it adds nothing."""
    if principal is None or not getattr(principal, "is_authenticated", False) or action == "manage":
        return None
    if isinstance(principal, LinkPrincipal):
        if not principal.email:
            return None
        seat = Approver.objects.filter(
            request__pk=principal.request_id,
            email=principal.email.lower(),
            version=principal.assignment_version,
            active=True,
        )
        return Q(pk=principal.request_id, pk__in=seat.values("request_id"))
    if isinstance(principal, ApiKeyPrincipal) or principal.is_superuser or not principal.is_active:
        return None
    email = (getattr(principal, "email", "") or "").strip().lower()
    responding = deployments_for(principal, RESPOND_PERM) if email else []
    if not responding:
        return None
    seats = Approver.objects.filter(email=email, active=True).values("request_id")
    return Q(deployment_id__in=responding, pk__in=seats)


class HITLRequestQuerySet(models.QuerySet["HITLRequest"]):
    def restrict(self, principal: Any, action: Action = "view") -> HITLRequestQuerySet:
        """The one permission filter every page and endpoint applies (see accounts.lib.access)."""
        scope = request_scope(principal, action)
        seats = _seat_scope(principal, action)
        return self.filter(scope if seats is None else scope | seats)

    def pending(self) -> HITLRequestQuerySet:
        return self.filter(status=Status.PENDING)


class HITLRequest(models.Model):
    """One pause for human input. Leaves `pending` exactly once (see hitl.services)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="requests")

    flow_id = models.CharField(max_length=200, blank=True, db_index=True)
    flow_name = models.CharField(max_length=200, blank=True)
    method_name = models.CharField(max_length=200, blank=True, db_index=True)
    message = models.TextField()
    content = models.TextField(blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.EMIT)
    emit_options = models.JSONField(default=list, blank=True)
    options = models.JSONField(default=list, blank=True, help_text="Resolved choices: {id,label,value,...}.")
    multiple = models.BooleanField(default=False)
    state = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    default_outcome = models.CharField(max_length=100, blank=True)
    on_timeout = models.CharField(max_length=10, choices=OnTimeout.choices, default=OnTimeout.DEFAULT)
    link_ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    editable = models.BooleanField(default=False)
    # Typed forms (SPEC §14): the JSON Schema of the answer (hitl.lib.forms' subset) and its pre-fill.
    form_schema = models.JSONField(default=dict, blank=True)
    form_initial = models.JSONField(default=dict, blank=True)
    # PostgreSQL's jsonb does not keep an object's key order: the fields' order, as given, is kept here.
    form_order = models.JSONField(default=list, blank=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    requested_assignee = models.EmailField(blank=True, help_text="assign_to as given by the client.")
    assigned_to_email = models.EmailField(db_index=True)
    assigned_rule = models.ForeignKey(RoutingRule, null=True, blank=True, on_delete=models.SET_NULL)
    assigned_rule_name = models.CharField(max_length=200, blank=True)
    assignment_step = models.CharField(max_length=20, choices=AssignmentStep.choices)
    # Bumped by every reassignment, delegation and escalation. Magic links and reply tokens carry it
    # (version 0 implicitly), and an answer through them must still match it in the compare-and-set:
    # a capability of an earlier assignment, even one back to the same person, no longer answers.
    assignment_version = models.PositiveIntegerField(default=0, editable=False)
    assignment_problems = models.JSONField(
        default=list, blank=True, help_text="Routing conditions that could not be evaluated (step condition_error)."
    )
    # Several approvers (SPEC §13). `policy` blank: the classic single assignee, exactly as before.
    approvers = models.JSONField(
        default=list, blank=True, help_text="The pool as given: emails and group:<name> entries (SPEC §13)."
    )
    policy = models.CharField(max_length=10, choices=Policy.choices, blank=True)
    required = models.PositiveSmallIntegerField(null=True, blank=True, help_text="quorum: matching decisions.")
    veto = models.BooleanField(default=True, help_text="approval mode: one rejection resolves it at once.")
    requested_by = models.EmailField(blank=True, help_text="Who asked; can never approve it (no self-approval).")

    # Not auto_now_add: create_request sets it to the same instant its deadlines count from.
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="Timeout deadline (auto-response / wait).")
    sla_due_at = models.DateTimeField(null=True, blank=True)
    overdue = models.BooleanField(default=False, help_text="Set when the SLA due time passed while pending.")
    reminder_due_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    escalation_due_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)

    notified_at = models.DateTimeField(null=True, blank=True, help_text="When the assignee was last notified.")
    notification_error = models.TextField(blank=True, help_text="The last notification failure, if any.")
    notification_failures = models.PositiveIntegerField(
        default=0, help_text="Notification attempts that failed (each is also in the audit log)."
    )

    objects = HITLRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "HITL request"
        indexes = [
            # The sweeper's query: pending requests whose deadline has passed.
            models.Index(fields=["due_at"], name="hitl_pending_due", condition=Q(status="pending")),
            models.Index(fields=["sla_due_at"], name="hitl_pending_sla", condition=Q(status="pending", overdue=False)),
            models.Index(fields=["reminder_due_at"], name="hitl_pending_reminder", condition=Q(status="pending")),
            models.Index(fields=["escalation_due_at"], name="hitl_pending_escalation", condition=Q(status="pending")),
            models.Index(fields=["deployment", "status", "-created_at"]),
            models.Index(fields=["assigned_to_email", "status"]),
            # Analytics select what was resolved in a period.
            models.Index(fields=["resolved_at"], name="hitl_resolved_at"),
            # …and the form answers among them (their fields' distributions), without reading every
            # request resolved in the period (a year at 1M: 0.44 s on SQLite).
            models.Index(fields=["mode", "status", "resolved_at"], name="hitl_mode_resolved_at"),
        ]

    def __str__(self) -> str:
        return f"{self.method_name or 'request'} {self.id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Assignees are stored lower-case, so "assigned to me" is an indexed equality, not UPPER() = UPPER().
        self.assigned_to_email = (self.assigned_to_email or "").strip().lower()
        super().save(*args, **kwargs)

    @property
    def is_pending(self) -> bool:
        return self.status == Status.PENDING

    @property
    def has_pool(self) -> bool:
        """Whether the request is decided by a pool of approvers (SPEC §13), not a single assignee."""
        return bool(self.policy)

    @property
    def ordered_schema(self) -> dict[str, Any]:
        """`form_schema` with its properties in the order they were given (SPEC §14)."""
        return ordered_schema(self.form_schema, self.form_order)

    def option_names(self) -> list[str]:
        """The outcomes a response may carry in this request's mode."""
        if self.mode == Mode.APPROVAL:
            return ["approved", "rejected"]
        if self.mode == Mode.EMIT:
            return list(self.emit_options)
        return []


def ordered_schema(schema: dict[str, Any] | None, order: list[str] | None) -> dict[str, Any]:
    schema = dict(schema or {})
    properties = schema.get("properties")
    if isinstance(properties, dict) and order:
        ranked = {name: i for i, name in enumerate(order)}
        schema["properties"] = dict(sorted(properties.items(), key=lambda item: ranked.get(item[0], len(ranked))))
    return schema


class Resolution(models.Model):
    """The one and only way a request left `pending`. Its primary key *is* the request, so the
    database refuses a second one even if two writers got past the compare-and-set."""

    request = models.OneToOneField(HITLRequest, on_delete=models.CASCADE, primary_key=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    outcome = models.CharField(max_length=200, blank=True, null=True)
    source = models.CharField(max_length=20, choices=Source.choices)
    responder = models.CharField(max_length=254, blank=True)
    result = models.JSONField(default=dict)
    answered_within_sla = models.BooleanField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.status} by {self.responder or self.source}"


class ApproverQuerySet(models.QuerySet["Approver"]):
    def undecided(self, request_id: Any) -> ApproverQuerySet:
        """The active seats of a pooled request whose approver has not decided, in pool order."""
        decided = Decision.objects.filter(request_id=request_id, approver=models.OuterRef("email"))
        return (
            self.filter(request_id=request_id, active=True)
            .annotate(decided=models.Exists(decided))
            .filter(decided=False)
            .order_by("position", "id")
        )


class Approver(models.Model):
    """One seat of a request's approver pool (SPEC §13). A reassignment ends a seat (`active` off) and
    opens another; `version` is what this seat's capabilities (reply token, magic link) are bound to,
    the request's `assignment_version` when the seat was opened, so replacing one approver ends that
    approver's capabilities and nobody else's."""

    request = models.ForeignKey(HITLRequest, on_delete=models.CASCADE, related_name="approver_seats")
    email = models.EmailField()
    via_group = models.CharField(max_length=150, blank=True, help_text="The group:<name> it came from, if any.")
    position = models.PositiveSmallIntegerField(default=0)
    version = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    replaced_by = models.EmailField(blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    resend_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="A fresh notification was asked for this seat and is not sent yet."
    )
    notification_error = models.TextField(blank=True, help_text="The last notification failure (a bounce, ...).")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ApproverQuerySet.as_manager()

    class Meta:
        ordering = ["request", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "email"], condition=Q(active=True), name="hitl_one_active_seat_per_email"
            ),
        ]
        indexes = [models.Index(fields=["email", "active"])]

    def __str__(self) -> str:
        return f"{self.email} ({'active' if self.active else 'replaced'})"


class Decision(models.Model):
    """One approver's decision on a pooled request (SPEC §13). The database refuses a second decision
    by the same approver; it is written in the same transaction as its audit event."""

    request = models.ForeignKey(HITLRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.EmailField(help_text="Whose decision it is (the seat's email).")
    outcome = models.CharField(max_length=200, blank=True, null=True)
    feedback = models.TextField(blank=True)
    text = models.TextField(blank=True)
    choices = models.JSONField(default=list, blank=True)
    edited_output = models.TextField(null=True, blank=True)
    form = models.JSONField(null=True, blank=True, help_text="Form mode: this approver's validated values.")
    content_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the content decided on.")
    source = models.CharField(max_length=20, choices=Source.choices)
    actor = models.CharField(max_length=254, blank=True, help_text="Who submitted it (a manager, the app).")
    on_behalf_of = models.BooleanField(default=False)
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["request", "decided_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="hitl_one_decision_per_approver"),
        ]
        indexes = [models.Index(fields=["approver", "decided_at"])]

    def __str__(self) -> str:
        return f"{self.approver}: {self.outcome}"

    def as_result(self) -> dict[str, Any]:
        """The result's `decisions` entry."""
        return {
            "responder": self.approver,
            "outcome": self.outcome,
            "feedback": self.feedback,
            "source": self.source,
            "decided_at": self.decided_at.isoformat().replace("+00:00", "Z"),
            "content_sha256": self.content_sha256,
            **({"form": self.form} if self.form is not None else {}),
        }


class ThrottleCounter(models.Model):
    """A fixed-window counter per key (error emails per address, fresh-link requests, ...)."""

    key = models.CharField(max_length=255, unique=True)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class InboundEmail(models.Model):
    """Every inbound email we processed, once per Message-ID (ESPs retry webhooks: the second copy
    is recognised and changes nothing)."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REFUSED = "refused", "Refused (see the reason; an error email only where a valid token names the sender)"
        IGNORED = "ignored", "Ignored (auto-reply, bounce, ...)"

    message_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    received_via = models.CharField(max_length=40, help_text="anymail:<esp>, mta (manage.py), dev mailbox")
    sender = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    request = models.ForeignKey(HITLRequest, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=40, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.outcome} {self.sender} {self.reason}"


# --- outbound webhooks (SPEC §6) -------------------------------------------------------------------


class WebhookEvent(models.TextChoices):
    """What a webhook can subscribe to (the names are the payload's `event`)."""

    NEW_REQUEST = "new_request", "New request"
    RESPONDED = "request_responded", "Responded"
    AUTO_RESPONDED = "request_auto_responded", "Auto-responded"
    TIMED_OUT = "request_timed_out", "Timed out"
    CANCELLED = "request_cancelled", "Cancelled"
    DECISION_RECORDED = "decision_recorded", "Decision recorded (several approvers)"


def _default_max_retries() -> int:
    from django.conf import settings

    return int(settings.HITL_WEBHOOK_MAX_RETRIES)


class Webhook(models.Model):
    """An HTTPS endpoint that receives a deployment's signed HITL events.

    The signing secret is generated by `hitl.webhooks.create_webhook`, shown once, and stored only
    encrypted (`hitl.lib.crypto`).
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=2000, help_text="HTTPS (plain HTTP only with DEBUG or an allow-listed host).")
    active = models.BooleanField(default=True)
    events = models.JSONField(
        default=list, blank=True, help_text="Events to send; empty means every event (new ones included)."
    )
    max_retries = models.PositiveSmallIntegerField(
        default=_default_max_retries,
        help_text="Retries after a failed attempt (timeouts, connection errors, 429, 5xx), with exponential "
        "backoff; 0 never retries.",
    )
    secret_encrypted = crypto.EncryptedTextField()
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(
        max_length=300, blank=True, editable=False, help_text="Why the server turned it off (e.g. the receiver's 410)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["deployment", "active"])]

    def __str__(self) -> str:
        return self.name or self.url

    def wants(self, event: str) -> bool:
        return self.active and (not self.events or event in self.events)

    def signing_secret(self) -> str:
        """The plaintext secret (`whsec_…`), for signing. Never store or log it."""
        return crypto.decrypt(self.secret_encrypted)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class NotificationDelivery(models.Model):
    """One channel's notification of one event of a request (email, Telegram, Slack, a flow's resume):
    an outbox row, as webhooks have. `announce` writes it in the transaction that changed the request
    and queues `hitl.tasks.deliver_notification` after commit; a task lost with its worker (the Redis
    broker drops what a killed worker held) or a failed try is queued again by the worker's ticker.

    `next_attempt_at` is when the next try may start; a try in progress pushes it past the task's time
    limit (a lease), so a worker killed mid-send is retried once that passes, never two at once.
    `queued_until` says a task is already on the queue. `attempt_count` counts claims, `failures` the
    tries that failed or never reported (a worker that died): a claim finds them by the difference.
    Delivery is at least once: a worker killed after sending and before recording sends it again.
    """

    request = models.ForeignKey("HITLRequest", on_delete=models.CASCADE, related_name="notification_deliveries")
    channel = models.CharField(max_length=200, help_text="The channel class's dotted path.")
    event = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    failures = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    queued_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A task for the next try is on the queue: the ticker does not queue another before this.",
    )
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="What the channel needs beyond the request (a reply email's recipient and thread).",
    )

    class Meta:
        verbose_name_plural = "notification deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The ticker's query: pending notifications whose next try is due.
            models.Index(
                fields=["next_attempt_at"], name="hitl_notification_due", condition=Q(status=DeliveryStatus.PENDING)
            ),
            models.Index(fields=["request", "-created_at"], name="hitl_notification_request"),
            # The minute sweep forgets delivered rows after a while.
            models.Index(
                fields=["delivered_at"], name="hitl_notification_done", condition=Q(status=DeliveryStatus.DELIVERED)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel.rsplit('.', 1)[-1]} ({self.status})"


class WebhookDelivery(models.Model):
    """One event for one webhook: the exact body, and a `webhook-id` that stays the same on every retry
    and redelivery, so receivers can de-duplicate.

    Rows are written in the same transaction as the change they announce (an outbox): a crash or a
    broker outage after the commit loses nothing, the sweeper sends what is still pending.
    `next_attempt_at` is when the next attempt may start; an attempt in progress pushes it forward by
    the HTTP timeout plus a margin (a lease), so a worker killed mid-delivery is retried once that
    passes, and never two workers at once. `queued_until` says a task for it is already on the queue
    (set when it is enqueued, cleared when an attempt claims it), so the few-second ticker that sends
    due retries does not queue a second one while the first waits for a worker.
    """

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    request = models.ForeignKey("HITLRequest", on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    decision = models.ForeignKey(
        "Decision", null=True, blank=True, on_delete=models.CASCADE, help_text="decision_recorded: which one."
    )
    message_id = models.CharField(max_length=64, unique=True, help_text="The webhook-id header.")
    body = models.TextField(help_text="The exact JSON sent (the signatures cover these bytes).")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    retries_left = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    queued_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A task for the next attempt is on the queue: the ticker does not queue another before this.",
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            # One delivery per webhook, request and event: a retried task finds the existing row.
            models.UniqueConstraint(
                fields=["webhook", "request", "event"], condition=Q(decision__isnull=True), name="hitl_delivery_once"
            ),
            # decision_recorded is sent once per decision (SPEC §13), so several per request.
            models.UniqueConstraint(
                fields=["webhook", "decision"],
                condition=Q(decision__isnull=False),
                name="hitl_delivery_once_per_decision",
            ),
        ]
        indexes = [
            # The sweeper's query: pending deliveries whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"], name="hitl_delivery_due", condition=Q(status=DeliveryStatus.PENDING)
            ),
            models.Index(fields=["webhook", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP try of a delivery, as shown in the admin's delivery log."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    url = models.URLField(max_length=2000)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    will_retry = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"#{self.number} {self.status_code or self.error[:40]}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class SentEmail(models.Model):
    """A notification email as it was sent, so a bounce reported later is matched to its request and
    recipient (with several approvers, SPEC §13, to that approver's seat): by the ESP's message id (a
    tracking webhook, authenticated by Anymail) or by a delivery report mailed back that quotes both
    our Message-ID and the Reply-To (whose token only the email's readers know)."""

    request = models.ForeignKey(HITLRequest, on_delete=models.CASCADE, related_name="sent_emails")
    to = models.EmailField()
    event = models.CharField(max_length=40)
    message_id = models.CharField(max_length=255, db_index=True, help_text="Our Message-ID header.")
    reply_to = models.CharField(max_length=255, blank=True)
    esp_message_id = models.CharField(max_length=255, blank=True, db_index=True, help_text="The ESP's id for it.")
    sent_at = models.DateTimeField(default=timezone.now)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce = models.TextField(blank=True, help_text="What the ESP or the receiving server said.")

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"{self.event} to {self.to}"


class TelegramMessage(models.Model):
    """A notification the Telegram channel posted, so it can take the buttons off once the request is
    resolved (by whatever channel)."""

    request = models.ForeignKey(HITLRequest, on_delete=models.CASCADE, related_name="telegram_messages")
    chat_id = models.CharField(max_length=64)
    message_id = models.BigIntegerField()
    event = models.CharField(max_length=40)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When its buttons were removed.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.chat_id}/{self.message_id}"


TELEGRAM_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")


class TelegramIdentity(models.Model):
    """Which approver a Telegram account is, per deployment (SPEC §13: a Telegram press on a request with
    approvers counts only when it maps to one). Configured by username; the first press from that
    username pins the account's numeric id, so a username given up and taken by someone else later
    answers nothing (refused as `telegram_account_changed` until staff clear the pinned id)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="telegram_identities")
    email = models.EmailField(help_text="The approver's email, as listed in requests' approvers.")
    username = models.CharField(max_length=32, help_text="Their Telegram username, without the @.")
    user_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The Telegram account id, pinned at the first press from this username. Clear it when the "
        "person changed Telegram accounts.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "Telegram identity"
        verbose_name_plural = "Telegram identities"
        ordering = ["deployment", "email"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "username"], name="hitl_telegram_username_once"),
            models.UniqueConstraint(fields=["deployment", "email"], name="hitl_telegram_email_once"),
        ]

    def __str__(self) -> str:
        return f"@{self.username} = {self.email}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.username = normal_telegram_username(self.username)
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.username = normal_telegram_username(self.username)
        if not TELEGRAM_USERNAME_RE.match(self.username):
            raise ValidationError(
                {"username": "A Telegram username: 5-32 letters, digits or _, starting with a letter."}
            )


def normal_telegram_username(username: str) -> str:
    """Usernames compare case-insensitively and are written without the @."""
    return (username or "").strip().removeprefix("@").lower()


class SlackMessage(models.Model):
    """A message the Slack channel posted (channel id and `ts` name it), so it can be updated once the
    request is resolved by whatever channel: the buttons go and it says who answered, how."""

    request = models.ForeignKey(HITLRequest, on_delete=models.CASCADE, related_name="slack_messages")
    channel_id = models.CharField(max_length=32)
    ts = models.CharField(max_length=32)
    event = models.CharField(max_length=40)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When its buttons were removed.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.ts}"


class IdempotencyKeyQuerySet(models.QuerySet["IdempotencyKey"]):
    def expired(self, now: Any = None) -> IdempotencyKeyQuerySet:
        return self.filter(created_at__lt=(now or timezone.now()) - IdempotencyKey.LIFETIME)


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` a principal sent to a POST (SPEC §15), and the first response it got.

    The row is inserted in its own transaction *before* the call runs: the unique (principal, key) pair
    is what lets exactly one of several concurrent duplicates in as many processes make the call; the
    others find the row and answer 409 (still running) or replay its response (done)."""

    LIFETIME = timedelta(hours=24)

    principal = models.CharField(max_length=64, help_text="key:<api key id> or user:<user id>.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty while in progress.")
    # Encrypted: a kickoff's first response carries the run's webhook secret, shown once; its replay is
    # the one other place it may appear, so it rests as a Fernet token like every other secret.
    response_encrypted = crypto.EncryptedTextField(blank=True, default="", help_text="The first response's body.")
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = IdempotencyKeyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="idempotency_key_per_principal")]

    def __str__(self) -> str:
        return f"{self.principal} {self.key[:40]}"
