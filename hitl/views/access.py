"""What every reviewer page shares: `page` (no caching, a strict CSP) and the one access helper,
`load_request` (404 when the request is in no deployment of yours, 403 when you may see it but not do
this), built on `restrict()` for signed-in users and magic-link holders alike."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from accounts.lib.access import Action, deployment_scope, principal_label
from accounts.models import Deployment
from hitl.models import HITLRequest
from hitl.views import link_session

# Reviewer pages run no inline script and load nothing from elsewhere but https images in content.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

View = Callable[..., HttpResponse]


def page(view: View) -> View:
    """Every reviewer page: no caching (answers change), a strict CSP (content is third-party text)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = never_cache(view)(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    return wrapper


def principals_for(request: HttpRequest, request_id: Any) -> list[Any]:
    """Who the visitor is for this request: the signed-in user and/or a magic link's holder."""
    found: list[Any] = []
    if request.user.is_authenticated:
        found.append(request.user)
    link = link_session.session_principal(request.session, request_id)
    if link is not None:
        found.append(link)
    return found


def load_request(
    request: HttpRequest, request_id: Any, action: Action = "view", principals: list[Any] | None = None
) -> tuple[HITLRequest, Any]:
    """The one access helper: the request and the principal allowed to `action` it.

    404 when no principal sees the request in a deployment of theirs; 403 when one belongs to its
    deployment (or sees it) but may not `action` it. Everything goes through `restrict()`.
    """
    if principals is None:
        principals = principals_for(request, request_id)
    base = HITLRequest.objects.select_related("deployment", "resolution")
    for principal in principals:
        found = base.restrict(principal, "view").filter(pk=request_id).first()
        if found is not None:
            break
    else:
        member = any(
            HITLRequest.objects.filter(
                pk=request_id, deployment__in=Deployment.objects.filter(deployment_scope(p, "view"))
            ).exists()
            for p in principals
        )
        if member:
            raise PermissionDenied("This request is assigned to someone else.")
        raise Http404("No such request.")
    if action == "view":
        return found, principal
    for candidate in principals:
        if HITLRequest.objects.restrict(candidate, action).filter(pk=request_id).exists():
            return found, candidate
    raise PermissionDenied(f"You may view this request but not {action} it.")


def reviewer_required(view: View) -> View:
    """Signed in, or holding a magic-link marker for this very request; else off to sign in."""

    @wraps(view)
    def wrapper(request: HttpRequest, request_id: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        if not principals_for(request, request_id):
            return redirect_to_login(request.get_full_path())
        return view(request, request_id, *args, **kwargs)

    return wrapper


def is_assignee(principal: Any, obj: HITLRequest) -> bool:
    return bool(principal_label(principal)) and principal_label(principal) == obj.assigned_to_email.lower()
