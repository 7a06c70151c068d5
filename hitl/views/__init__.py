"""Reviewer pages (SPEC §4): the inbox, the review page, manager and assignee actions, magic links.

House style: short function views; `load_request` is the one access helper (404 when the request is
in no deployment of yours, 403 when you may see it but not do this); one service call; a redirect.
Magic-link GETs only show (mail scanners open links); every change is a POST with a CSRF token.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.lib.access import Action, LinkPrincipal, deployment_scope, principal_label
from accounts.models import Deployment
from hitl import services
from hitl.channels import telegram
from hitl.lib.counting import TAB_CAP, CappedPaginator, capped_counts
from hitl.lib.errors import HitlError, InvalidAnswer, InvalidInput, NotPending
from hitl.lib.markdown import render_markdown
from hitl.models import HITLRequest, Source, Status
from hitl.services import throttle
from hitl.views import context as review
from hitl.views import link_session as magic
from hitl.views.forms import AnswerForm, CancelForm, EmailNoteForm, InboxFilterForm

PAGE_SIZE = 25
FRESH_LINKS_PER_HOUR = 3

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


# --- access ----------------------------------------------------------------------------------------


def principals_for(request: HttpRequest, request_id: Any) -> list[Any]:
    """Who the visitor is for this request: the signed-in user and/or a magic link's holder."""
    found: list[Any] = []
    if request.user.is_authenticated:
        found.append(request.user)
    link = magic.session_principal(request.session, request_id)
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


# --- inbox -----------------------------------------------------------------------------------------


@page
@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    user = request.user
    deployments = Deployment.objects.filter(deployment_scope(user, "view")).order_by("name")
    form = InboxFilterForm(request.GET or None, deployments=deployments)
    visible = HITLRequest.objects.restrict(user, "view")
    scoped = _filtered(visible, form, user)
    now = timezone.now()
    status = form.value("status") or Status.PENDING
    # Each tab (and the overdue banner) counts up to TAB_CAP ("1,000+"), all in one query that reads at
    # most TAB_CAP + 1 index entries per tab, however many requests there are.
    counts = capped_counts(
        {
            **{
                value: scoped if value == "all" else scoped.filter(status=value)
                for value, _ in form.fields["status"].choices  # type: ignore[attr-defined]
            },
            "overdue": scoped.filter(_overdue_q(now)),
        },
        TAB_CAP,
    )
    rows = scoped if status == "all" else scoped.filter(status=status)
    if (form.value("q") or "").strip() and not counts[status].capped:
        # A search matching few requests: find them through the search indexes first, then sort those,
        # rather than letting the database walk every request newest first looking for the few matches.
        rows = HITLRequest.objects.filter(pk__in=list(rows.order_by().values_list("pk", flat=True)[:TAB_CAP]))
    rows = rows.select_related("deployment", "resolution").order_by("-created_at", "id")
    paginator = CappedPaginator(rows, PAGE_SIZE, depth=TAB_CAP, counted=counts.get(status))
    page_obj = paginator.get_page(request.GET.get("page"))
    for item in page_obj.object_list:
        item.badges = review.deadlines(item, now)  # type: ignore[attr-defined]
        item.is_overdue = review.is_overdue(item, now)  # type: ignore[attr-defined]
    keep = {k: v for k, v in request.GET.items() if k not in ("page", "status") and v}
    tabs = [
        {
            "value": value,
            "label": label,
            "count": counts[value],
            "query": urlencode({**keep, "status": value}),
            "active": value == status,
        }
        for value, label in form.fields["status"].choices  # type: ignore[attr-defined]
    ]
    context = {
        "form": form,
        "page_obj": page_obj,
        "tabs": tabs,
        "status": status,
        "overdue_count": counts["overdue"],
        "nav": "inbox",
        "manages_any": Deployment.objects.filter(deployment_scope(user, "manage")).exists(),
        "page_query": urlencode({**keep, "status": status}),
        "filtered": any(form.value(name) for name in ("q", "deployment", "flow", "method", "overdue", "mine")),
    }
    return render(request, "hitl/inbox.html", context)


def _overdue_q(now: Any) -> Q:
    return Q(status=Status.PENDING) & (Q(overdue=True) | Q(sla_due_at__lte=now))


def _filtered(queryset: QuerySet[HITLRequest], form: InboxFilterForm, user: Any) -> QuerySet[HITLRequest]:
    """Every filter but status (the status tabs count within the others)."""
    if form.value("mine"):
        queryset = queryset.filter(assigned_to_email=principal_label(user))
    if form.value("deployment"):
        queryset = queryset.filter(deployment=form.value("deployment"))
    if form.value("flow"):
        queryset = queryset.filter(Q(flow_name__icontains=form.value("flow")) | Q(flow_id=form.value("flow")))
    if form.value("method"):
        queryset = queryset.filter(method_name__icontains=form.value("method"))
    if form.value("overdue"):
        queryset = queryset.filter(_overdue_q(timezone.now()))
    q = (form.value("q") or "").strip()
    if q:
        match = (
            Q(message__icontains=q)
            | Q(method_name__icontains=q)
            | Q(flow_name__icontains=q)
            | Q(flow_id=q)
            | Q(assigned_to_email__icontains=q)
        )
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(q))
        queryset = queryset.filter(match)
    return queryset


# --- the review page -------------------------------------------------------------------------------


def review_context(
    request: HttpRequest, obj: HITLRequest, principal: Any, *, form: AnswerForm | None = None, link_path: str = ""
) -> dict[str, Any]:
    """Everything review.html shows. `link_path` is set when the page was opened through a magic
    link: then its forms post back through the link (the token is the credential)."""
    is_link = isinstance(principal, LinkPrincipal)
    can_respond = obj.is_pending and HITLRequest.objects.restrict(principal, "respond").filter(pk=obj.pk).exists()
    can_manage = (
        not is_link
        and obj.is_pending
        and HITLRequest.objects.restrict(request.user, "manage").filter(pk=obj.pk).exists()
    )
    earlier: list[HITLRequest] = []
    if obj.flow_id:
        earlier = list(
            HITLRequest.objects.restrict(principal, "view")
            .filter(deployment_id=obj.deployment_id, flow_id=obj.flow_id, created_at__lte=obj.created_at)
            .exclude(pk=obj.pk)
            .select_related("resolution")
            .order_by("-created_at")[:20]
        )
    resolution = getattr(obj, "resolution", None) if not obj.is_pending else None
    if link_path:
        urls = {"answer": link_path, "delegate": f"{link_path}delegate/"}
    else:
        urls = {name: reverse(f"hitl:{name}", args=[obj.pk]) for name in ("answer", "delegate")}
    return {
        "req": obj,
        "principal_label": principal_label(principal),
        "is_link": is_link,
        "link_email": principal.email if is_link else "",
        # Sanitised by nh3 in render_markdown: no script, no event handlers, no javascript: URLs.
        "content_html": mark_safe(render_markdown(obj.content)) if obj.content else "",  # noqa: S308
        "state_tree": review.state_tree(obj.state) if obj.state else "",
        "state_json": review.pretty_json(obj.state),
        "metadata_json": review.pretty_json(obj.metadata) if obj.metadata else "",
        "steps": review.step_history(obj),
        "earlier": earlier,
        "badges": review.deadlines(obj),
        "is_overdue": review.is_overdue(obj),
        "resolution": resolution,
        "answer_summary": review.answer_summary(resolution.result) if resolution else "",
        "form": form or AnswerForm(obj),
        "can_respond": can_respond,
        "can_manage": can_manage,
        "can_delegate": can_respond and is_assignee(principal, obj),
        "reassign_form": EmailNoteForm(prefix="reassign"),
        "delegate_form": EmailNoteForm(prefix="delegate"),
        "cancel_form": CancelForm(),
        "urls": urls,
    }


@page
@reviewer_required
@require_GET
def review_page(request: HttpRequest, request_id: Any) -> HttpResponse:
    obj, principal = load_request(request, request_id)
    return render(request, "hitl/review.html", review_context(request, obj, principal))


@page
@reviewer_required
@require_POST
def answer(request: HttpRequest, request_id: Any) -> HttpResponse:
    obj, principal = load_request(request, request_id, "respond")
    return _answer(request, obj, principal)


def _answer(request: HttpRequest, obj: HITLRequest, principal: Any, link_path: str = "") -> HttpResponse:
    """Validate, answer through the one shared path, redirect; or show the page again with the error."""
    form = AnswerForm(obj, request.POST)
    if form.is_valid():
        who = principal_label(principal)
        try:
            resolution = services.respond_to_request(obj.pk, form.answer(), responder=who, source=Source.DASHBOARD)
        except InvalidAnswer as exc:
            form.add_error(None, exc.detail)
        except NotPending as exc:
            messages.error(request, exc.detail)
            return redirect(link_path or reverse("hitl:review", args=[obj.pk]))
        else:
            summary = review.answer_summary(resolution.result) or "your feedback"
            messages.success(request, f"Thank you — recorded: {summary}.")
            return redirect("hitl:review", obj.pk)
    context = review_context(request, obj, principal, form=form, link_path=link_path)
    return render(request, "hitl/review.html", context, status=400)


# --- manager and assignee actions ------------------------------------------------------------------


def _after_action(request: HttpRequest, obj: HITLRequest, call: Callable[[], Any], done: str) -> HttpResponse:
    try:
        call()
    except InvalidInput as exc:
        messages.error(request, "; ".join(" ".join(v) for v in exc.errors.values()))
    except HitlError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done)
    return redirect("hitl:review", obj.pk)


@page
@login_required
@require_POST
def reassign(request: HttpRequest, request_id: Any) -> HttpResponse:
    obj, principal = load_request(request, request_id, "manage")
    form = EmailNoteForm(request.POST, prefix="reassign")
    if not form.is_valid():
        messages.error(request, "Reassign: give a valid email address.")
        return redirect("hitl:review", obj.pk)
    email, note = form.cleaned_data["email"], form.cleaned_data["note"]
    return _after_action(
        request,
        obj,
        lambda: services.reassign_request(
            obj.pk, email=email, note=note, actor=principal_label(principal), source=Source.DASHBOARD
        ),
        f"Reassigned to {email.lower()}; they have been notified.",
    )


@page
@login_required
@require_POST
def cancel(request: HttpRequest, request_id: Any) -> HttpResponse:
    obj, principal = load_request(request, request_id, "manage")
    form = CancelForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _after_action(
        request,
        obj,
        lambda: services.cancel_request(
            obj.pk, actor=principal_label(principal), source=Source.DASHBOARD, reason=reason
        ),
        "Cancelled.",
    )


@page
@login_required
@require_POST
def resend(request: HttpRequest, request_id: Any) -> HttpResponse:
    obj, principal = load_request(request, request_id, "manage")
    return _after_action(
        request,
        obj,
        lambda: services.resend_notification(obj.pk, actor=principal_label(principal), source=Source.DASHBOARD),
        f"Notification sent again to {obj.assigned_to_email}.",
    )


@page
@reviewer_required
@require_POST
def delegate(request: HttpRequest, request_id: Any) -> HttpResponse:
    obj, principal = load_request(request, request_id, "respond")
    return _delegate(request, obj, principal)


def _delegate(request: HttpRequest, obj: HITLRequest, principal: Any) -> HttpResponse:
    if not is_assignee(principal, obj):
        raise PermissionDenied("Only the assignee can delegate; managers reassign.")
    form = EmailNoteForm(request.POST, prefix="delegate")
    if not form.is_valid():
        messages.error(request, "Delegate: give a valid email address.")
        return redirect(request.path.removesuffix("delegate/"))
    email, note = form.cleaned_data["email"].lower(), form.cleaned_data["note"]
    try:
        services.delegate_request(
            obj.pk, email=email, note=note, actor=principal_label(principal), source=Source.DASHBOARD
        )
    except HitlError as exc:
        messages.error(request, exc.detail)
        return redirect(request.path.removesuffix("delegate/"))
    messages.success(request, f"Handed over to {email}; they have been notified.")
    if HITLRequest.objects.restrict(principal, "view").filter(pk=obj.pk).exists():
        return redirect("hitl:review", obj.pk)  # a manager still sees it
    return redirect("hitl:done")


# --- magic links -----------------------------------------------------------------------------------


def _link(request_id: Any, email_b64: str, token: str) -> magic.LinkCheck:
    link = magic.check(request_id, email_b64, token)
    if link.state == "invalid":
        raise Http404("This link is not valid.")
    return link


def _link_request(request: HttpRequest, request_id: Any, link: magic.LinkCheck, action: Action) -> Any:
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
    if link.state == "expired":
        return _expired(request, request_id, link)
    found = _link_request(request, request_id, link, "view" if request.method == "GET" else "respond")
    if isinstance(found, HttpResponse):
        return found
    obj, principal = found
    if request.method == "GET":
        return render(request, "hitl/review.html", review_context(request, obj, principal, link_path=request.path))
    magic.remember(request.session, obj.pk, link)
    return _answer(request, obj, principal, link_path=request.path)


def _expired(request: HttpRequest, request_id: Any, link: magic.LinkCheck) -> HttpResponse:
    obj = HITLRequest.objects.filter(pk=request_id).first()
    if obj is None:
        raise Http404("No such request.")
    context = {
        "req": obj,
        "assigned_here": obj.assigned_to_email.lower() == link.email,
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
    if obj.assigned_to_email.lower() != link.email:
        return render(request, "hitl/link_elsewhere.html", {"email": link.email}, status=403)
    if not obj.is_pending:
        messages.info(request, "This request is closed; there is nothing left to answer.")
        return redirect("hitl:done")
    if not throttle.allow(f"fresh-link:{obj.pk}", limit=FRESH_LINKS_PER_HOUR, window_seconds=3600):
        context = {"req": obj, "assigned_here": True, "fresh_url": request.path, "throttled": True}
        return render(request, "hitl/link_expired.html", context, status=429)
    try:
        services.resend_notification(obj.pk, actor=link.email, source=Source.DASHBOARD)
    except NotPending:
        messages.info(request, "This request is closed; there is nothing left to answer.")
        return redirect("hitl:done")
    messages.success(request, f"We sent a fresh link to {_masked(obj.assigned_to_email)}. Check your inbox.")
    return redirect("hitl:done")


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * max(len(local) - 1, 2)}@{domain}"


@page
@require_POST
def magic_delegate(request: HttpRequest, request_id: Any, email_b64: str, token: str) -> HttpResponse:
    link = _link(request_id, email_b64, token)
    if link.state == "expired":
        return _expired(request, request_id, link)
    found = _link_request(request, request_id, link, "respond")
    if isinstance(found, HttpResponse):
        return found
    obj, principal = found
    return _delegate(request, obj, principal)


@page
@require_GET
def done(request: HttpRequest) -> HttpResponse:
    """Where link holders land after an action that leaves them nothing to look at."""
    return render(request, "hitl/done.html")


def home(request: HttpRequest) -> HttpResponse:
    return redirect("hitl:inbox")


# --- Telegram --------------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def telegram_webhook(request: HttpRequest, deployment_id: int) -> HttpResponse:
    """Telegram's updates for one deployment's bot(s), authenticated by the secret-token header."""
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        raise Http404("No such deployment.")
    given = request.META.get(telegram.SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), telegram.webhook_secret(deployment.pk).encode()):
        return JsonResponse({"detail": "Bad secret token.", "code": "forbidden"}, status=403)
    try:
        update = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"detail": "Expected a JSON update.", "code": "invalid"}, status=400)
    if not isinstance(update, dict):
        return JsonResponse({"detail": "Expected a JSON update.", "code": "invalid"}, status=400)
    return JsonResponse(telegram.process_update(deployment, update))
