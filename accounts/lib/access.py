"""Who may see and act on which deployment's requests (SPEC §10), in one place.

A principal is a signed-in user (permissions from django-guardian, per deployment, direct or through
groups), an API key (its own deployment only; read-only keys may not act), or the holder of a magic
link (`LinkPrincipal`: one request, while it is assigned to the link's email). Email-reply responders
are authorised by their signed reply token instead, never through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.db.models import Q
from guardian.shortcuts import get_objects_for_user

from accounts.models import ApiKey, Deployment

Action = Literal["view", "respond", "manage"]

MANAGE_PERM = "accounts.manage_human_feedback"
RESPOND_PERM = "accounts.respond_to_human_feedback"


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """What `request.user` is for a request authenticated with an API key."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    is_staff: bool = False
    is_anonymous: bool = False

    @property
    def deployment_id(self) -> int:
        return self.key.deployment_id

    @property
    def label(self) -> str:
        return self.key.label

    @property
    def email(self) -> str:
        return ""

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class LinkPrincipal:
    """Whoever opened a valid magic link (SPEC §4): may view and answer that one request, and only
    while it is still assigned to the link's email (a reassignment or delegation ends it). Never a
    manager. Built by `hitl.lib.magic` from a verified token or the session marker it leaves."""

    request_id: str
    email: str
    assignment_version: int = 0  # the assignment the link was issued for
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    is_staff: bool = False
    is_anonymous: bool = False

    @property
    def label(self) -> str:
        return self.email

    def __str__(self) -> str:
        return self.email


def principal_label(principal: Any) -> str:
    """The actor string written in audit events and `responder` fields."""
    if isinstance(principal, ApiKeyPrincipal):
        return principal.label
    return (getattr(principal, "email", "") or getattr(principal, "username", "") or "unknown").lower()


def deployments_for(user: Any, perm: str) -> list[int]:
    """The ids of the deployments `user` holds `perm` on (directly, through a group, or globally).

    Read into a list (one query) rather than left as a subquery: the requests table is then filtered by
    `deployment_id IN (1, 2, …)`, which PostgreSQL plans on its indexes even with a million rows,
    where a permission subquery OR-ed with the assignee test made it scan the table.

    Cached on the user object for its lifetime (one request), as Django's ModelBackend caches
    `_perm_cache`: a page asks several times (the requests, the deployment filter, the nav).
    """
    cache: dict[str, list[int]] = user.__dict__.setdefault("_hitl_deployment_ids", {})
    if perm not in cache:
        cache[perm] = list(
            get_objects_for_user(user, perm, klass=Deployment, accept_global_perms=True)
            .order_by()
            .values_list("pk", flat=True)
        )
    return cache[perm]


def request_scope(principal: Any, action: Action) -> Q:
    """A Q over HITLRequest selecting what `principal` may `action`. Empty Q(pk__in=[]) for nothing."""
    nothing = Q(pk__in=[])
    if principal is None or not getattr(principal, "is_authenticated", False):
        return nothing
    if isinstance(principal, ApiKeyPrincipal):
        if action != "view" and principal.key.access != ApiKey.Access.FULL:
            return nothing
        return Q(deployment_id=principal.deployment_id)
    if isinstance(principal, LinkPrincipal):
        if action == "manage" or not principal.email:
            return nothing
        return Q(
            pk=principal.request_id,
            assigned_to_email=principal.email.lower(),
            assignment_version=principal.assignment_version,
        )
    if not principal.is_active:
        return nothing
    if principal.is_superuser:
        return Q()
    managed_ids = deployments_for(principal, MANAGE_PERM)
    responding_ids = deployments_for(principal, RESPOND_PERM)
    email = (principal.email or "").strip().lower()  # assignees are stored lower-case (HITLRequest)
    if action == "manage":
        return Q(deployment_id__in=managed_ids) if managed_ids else nothing
    # Answering is the respond permission's (SPEC §10): manage alone answers nothing; manage and respond
    # together answer any request of the deployment (on behalf of its assignee, see `on_behalf_of`);
    # respond alone answers what is assigned to one's own email.
    whole = sorted(set(managed_ids) & set(responding_ids)) if action == "respond" else sorted(managed_ids)
    assigned_only = sorted(set(responding_ids) - set(whole)) if email else []
    scope = Q(deployment_id__in=whole) if whole else nothing
    if assigned_only:
        assigned = Q(deployment_id__in=assigned_only, assigned_to_email=email)
        scope = (scope | assigned) if whole else assigned
    return scope


def on_behalf_of(principal: Any, assignee: str) -> str:
    """The assignee a signed-in answer is recorded as made on behalf of ("" when it is the assignee's
    own, or comes from a key, a link or the callback app): a manager-responder answering someone
    else's request (SPEC §10)."""
    if isinstance(principal, (ApiKeyPrincipal, LinkPrincipal)) or principal is None:
        return ""
    own = (getattr(principal, "email", "") or "").strip().lower()
    return "" if own == assignee.strip().lower() else assignee.strip().lower()


def may_hold_capabilities(principal: Any, deployment_id: int) -> bool:
    """Whether `principal` may be shown capabilities that act on its own (a request's `callback_url`)
    for a request of `deployment_id` (SPEC §10): a full key of that deployment, a superuser, or a
    manager of it. Never a read-only key, a responder, a magic-link holder or anyone else."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return False
    if isinstance(principal, ApiKeyPrincipal):
        return principal.key.access == ApiKey.Access.FULL and principal.deployment_id == deployment_id
    if isinstance(principal, LinkPrincipal) or not principal.is_active:
        return False
    return bool(principal.is_superuser) or deployment_id in deployments_for(principal, MANAGE_PERM)


def deployment_scope(principal: Any, action: Action) -> Q:
    """A Q over Deployment: which deployments `principal` may create requests in / manage."""
    nothing = Q(pk__in=[])
    if principal is None or not getattr(principal, "is_authenticated", False):
        return nothing
    if isinstance(principal, ApiKeyPrincipal):
        if action != "view" and principal.key.access != ApiKey.Access.FULL:
            return nothing
        return Q(pk=principal.deployment_id)
    if isinstance(principal, LinkPrincipal):
        return nothing  # a link opens one request, never a deployment
    if principal.is_superuser:
        return Q()
    ids = deployments_for(principal, MANAGE_PERM)
    if action != "manage":
        ids = sorted({*ids, *deployments_for(principal, RESPOND_PERM)})
    return Q(pk__in=ids)


def audit_scope(principal: Any) -> Q:
    """A Q over AuditEvent: what `principal` may read or export from the audit log.

    Superusers and holders of the global `audit.view_auditevent` permission (the admin's audit
    readers) see every event; managers the events of the deployments they manage; an API key (read
    keys included) its own deployment's. Events without a deployment are for the first group only.
    """
    nothing = Q(pk__in=[])
    if principal is None or not getattr(principal, "is_authenticated", False):
        return nothing
    if isinstance(principal, ApiKeyPrincipal):
        return Q(deployment_id=principal.deployment_id)
    if not principal.is_active:
        return nothing
    if principal.is_superuser or principal.has_perm("audit.view_auditevent"):
        return Q()
    return Q(deployment_id__in=deployments_for(principal, MANAGE_PERM))
