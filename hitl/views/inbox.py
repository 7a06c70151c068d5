"""The inbox: requests assigned to me (all of a deployment for managers), status tabs, filters, search."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.lib.access import deployment_scope, principal_label
from accounts.models import Deployment
from hitl.lib.counting import TAB_CAP, CappedPaginator, capped_counts
from hitl.models import HITLRequest, Status
from hitl.views import context as review
from hitl.views.access import page
from hitl.views.forms import InboxFilterForm

PAGE_SIZE = 25


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
