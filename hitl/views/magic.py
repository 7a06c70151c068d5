"""Magic-link pages (SPEC §4): GET shows the request (mail scanners open links), POST answers or
delegates; an expired link offers a fresh one, sent only to the assigned address."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.lib.access import Action
from hitl import services
from hitl.lib.errors import NotPending
from hitl.models import HITLRequest, Source
from hitl.services import throttle
from hitl.views import link_session
from hitl.views.access import load_request, page
from hitl.views.review import review_context, submit_answer, submit_delegation

FRESH_LINKS_PER_HOUR = 3


def _link(request_id: Any, email_b64: str, token: str) -> link_session.LinkCheck:
    link = link_session.check(request_id, email_b64, token)
    if link.state == "invalid":
        raise Http404("This link is not valid.")
    return link


def _superseded(request: HttpRequest, link: link_session.LinkCheck) -> HttpResponse:
    """A link of an earlier assignment: the request was reassigned since (SPEC §10)."""
    return render(request, "hitl/link_elsewhere.html", {"email": link.email}, status=403)


def _link_request(request: HttpRequest, request_id: Any, link: link_session.LinkCheck, action: Action) -> Any:
    """The request for a link's holder, or the page saying why not (it went to someone else)."""
    try:
        return load_request(request, request_id, action, principals=[link.principal(request_id)])
    except Http404:
        if not HITLRequest.objects.filter(pk=request_id).exists():
            raise
        return render(request, "hitl/link_elsewhere.html", {"email": link.email}, status=403)


@page
@require_http_methods(["GET", "POST"])
def magic_link(request: HttpRequest, request_id: Any, email_b64: str, token: str) -> HttpResponse:
    """GET shows the request and its answer form (nothing changes: scanners open links); POST answers."""
    link = _link(request_id, email_b64, token)
    if link.state == "superseded":
        return _superseded(request, link)
    if link.state == "expired":
        return _expired(request, request_id, link)
    found = _link_request(request, request_id, link, "view" if request.method == "GET" else "respond")
    if isinstance(found, HttpResponse):
        return found
    obj, principal = found
    if request.method == "GET":
        return render(request, "hitl/review.html", review_context(request, obj, principal, link_path=request.path))
    link_session.remember(request.session, obj.pk, link)
    return submit_answer(request, obj, principal, link_path=request.path)


def _expired(request: HttpRequest, request_id: Any, link: link_session.LinkCheck) -> HttpResponse:
    obj = HITLRequest.objects.filter(pk=request_id).first()
    if obj is None:
        raise Http404("No such request.")
    context = {
        "req": obj,
        "assigned_here": services.addressed_to(obj, link.email),
        "fresh_url": f"{request.path}fresh/",
    }
    return render(request, "hitl/link_expired.html", context, status=410)


@page
@require_POST
def magic_fresh(request: HttpRequest, request_id: Any, email_b64: str, token: str) -> HttpResponse:
    """ "Send me a fresh link": only to the assigned address, a few times an hour per request."""
    link = _link(request_id, email_b64, token)
    obj = HITLRequest.objects.filter(pk=request_id).first()
    if obj is None:
        raise Http404("No such request.")
    if link.state == "superseded" or not services.addressed_to(obj, link.email):
        return render(request, "hitl/link_elsewhere.html", {"email": link.email}, status=403)
    if not obj.is_pending:
        messages.info(request, "This request is closed; there is nothing left to answer.")
        return redirect("hitl:done")
    # Per request, or per approver on a request with approvers: one approver's asking never uses up another's.
    key = f"fresh-link:{obj.pk}:{link.email}" if obj.has_pool else f"fresh-link:{obj.pk}"
    if not throttle.allow(key, limit=FRESH_LINKS_PER_HOUR, window_seconds=3600):
        context = {"req": obj, "assigned_here": True, "fresh_url": request.path, "throttled": True}
        return render(request, "hitl/link_expired.html", context, status=429)
    try:
        services.resend_notification(
            obj.pk, actor=link.email, source=Source.DASHBOARD, to=link.email if obj.has_pool else ""
        )
    except NotPending:
        messages.info(request, "This request is closed; there is nothing left to answer.")
        return redirect("hitl:done")
    to = link.email if obj.has_pool else obj.assigned_to_email
    messages.success(request, f"We sent a fresh link to {_masked(to)}. Check your inbox.")
    return redirect("hitl:done")


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * max(len(local) - 1, 2)}@{domain}"


@page
@require_POST
def magic_delegate(request: HttpRequest, request_id: Any, email_b64: str, token: str) -> HttpResponse:
    link = _link(request_id, email_b64, token)
    if link.state == "superseded":
        return _superseded(request, link)
    if link.state == "expired":
        return _expired(request, request_id, link)
    found = _link_request(request, request_id, link, "respond")
    if isinstance(found, HttpResponse):
        return found
    obj, principal = found
    return submit_delegation(request, obj, principal)
