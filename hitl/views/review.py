"""The review page and what can be done from it: answer, and the manager's and assignee's actions
(reassign, cancel, resend, delegate). Short views: access, one service call, a redirect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from accounts.lib.access import LinkPrincipal, on_behalf_of, principal_label
from hitl import services
from hitl.lib.errors import HitlError, InvalidAnswer, InvalidInput, NotPending
from hitl.lib.markdown import MarkdownError, render_markdown
from hitl.models import Approver, Decision, HITLRequest, Source
from hitl.results import answer_summary
from hitl.views import context as review
from hitl.views.access import is_assignee, load_request, page, reviewer_required
from hitl.views.forms import AnswerForm, CancelForm, EmailNoteForm, form_rows


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
    pool = _pool_panel(obj, principal) if obj.has_pool else None
    if pool is not None and (pool["mine"] is not None or not pool["is_approver"]):
        can_respond = False  # an approver decides once; only approvers decide (SPEC §13)
    return {
        "req": obj,
        "pool": pool,
        "principal_label": principal_label(principal),
        "is_link": is_link,
        "link_email": principal.email if is_link else "",
        # Sanitised by nh3 in render_markdown: no script, no event handlers, no javascript: URLs.
        "content_html": mark_safe(_content_html(obj.content)) if obj.content else "",  # noqa: S308
        "state_tree": review.state_tree(obj.state) if obj.state else "",
        "state_json": review.pretty_json(obj.state),
        "metadata_json": review.pretty_json(obj.metadata) if obj.metadata else "",
        "steps": review.step_history(obj),
        "earlier": earlier,
        "badges": review.deadlines(obj),
        "is_overdue": review.is_overdue(obj),
        "resolution": resolution,
        "answer_summary": answer_summary(resolution.result) if resolution else "",
        "form": form or AnswerForm(obj),
        # Typed forms (SPEC §14): the fields, as posted after a refusal with each one's errors.
        "form_rows": (
            form_rows(
                obj, form.data if form is not None and form.is_bound else None, getattr(form, "field_errors", None)
            )
            if obj.mode == "form"
            else []
        ),
        "can_respond": can_respond,
        "can_manage": can_manage,
        "can_delegate": can_respond and is_assignee(principal, obj),
        "reassign_form": EmailNoteForm(prefix="reassign"),
        "delegate_form": EmailNoteForm(prefix="delegate"),
        "cancel_form": CancelForm(),
        "urls": urls,
    }


def _pool_panel(obj: HITLRequest, principal: Any) -> dict[str, Any]:
    """Several approvers (SPEC §13): the decisions so far, who is still to decide, and the visitor's own."""
    me = principal_label(principal)
    decisions = list(Decision.objects.filter(request_id=obj.pk).order_by("decided_at", "id"))
    seats = list(Approver.objects.filter(request_id=obj.pk, active=True).order_by("position", "id"))
    decided = {d.approver for d in decisions}
    return {
        "decisions": decisions,
        "seats": seats,
        "waiting": [seat.email for seat in seats if seat.email not in decided],
        "mine": next((d for d in decisions if d.approver == me), None),
        "is_approver": any(seat.email == me for seat in seats),
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
    return submit_answer(request, obj, principal)


def _content_html(content: str) -> str:
    """The content as safe HTML; if it cannot be rendered, as escaped text (the reviewer still sees it)."""
    try:
        return render_markdown(content)
    except MarkdownError:
        return format_html('<pre class="plain">{}</pre>', content)


def submit_answer(request: HttpRequest, obj: HITLRequest, principal: Any, link_path: str = "") -> HttpResponse:
    """Validate, answer through the one shared path, redirect; or show the page again with the error."""
    form = AnswerForm(obj, request.POST)
    if form.is_valid():
        who = principal_label(principal)
        try:
            resolution = services.respond_to_request(
                obj.pk,
                form.answer(),
                responder=who,
                source=Source.DASHBOARD,
                # With several approvers each answers as themselves (on behalf of others: the API).
                on_behalf_of="" if obj.has_pool else on_behalf_of(principal, obj.assigned_to_email),
                # A link's answer holds only for the assignment it was issued for, even mid-flight.
                assignment_version=principal.assignment_version if isinstance(principal, LinkPrincipal) else None,
            )
        except InvalidAnswer as exc:
            if exc.extra.get("errors") and obj.mode == "form":
                form.field_errors = exc.extra["errors"]  # shown next to each field
                form.add_error(None, f"{len(exc.extra['errors'])} field(s) need fixing; nothing was recorded.")
            else:
                form.add_error(None, exc.detail)
        except (NotPending, services.DecisionRefused) as exc:
            messages.error(request, exc.detail)
            return redirect(link_path or reverse("hitl:review", args=[obj.pk]))
        else:
            if obj.has_pool and resolution.status == "pending":
                outcome = form.answer().outcome or "answered"
                messages.success(request, f"Thank you — your decision is recorded: {outcome}.")
                return redirect("hitl:review", obj.pk)
            summary = answer_summary(resolution.result) or "your feedback"
            messages.success(request, f"Thank you — recorded: {summary}.")
            return redirect("hitl:review", obj.pk)
    context = review_context(request, obj, principal, form=form, link_path=link_path)
    return render(request, "hitl/review.html", context, status=400)


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
    return submit_delegation(request, obj, principal)


def submit_delegation(request: HttpRequest, obj: HITLRequest, principal: Any) -> HttpResponse:
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


@page
@require_GET
def done(request: HttpRequest) -> HttpResponse:
    """Where link holders land after an action that leaves them nothing to look at."""
    return render(request, "hitl/done.html")


def home(request: HttpRequest) -> HttpResponse:
    return redirect("hitl:inbox")
