"""The analytics filters, shared by the page, the CSV downloads and the API, and the one place that
decides which requests a principal may analyse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.lib.access import Action, ApiKeyPrincipal, deployment_scope
from accounts.models import Deployment
from hitl.models import HITLRequest, Rollup
from hitl.services.rollups import ALL_FLOWS, ALL_METHODS, ALL_REVIEWERS

DEFAULT_DAYS = 30
MAX_DAYS = 731
# Up to this many days the default bucket is a day, beyond it a week.
DAILY_UP_TO = 62
BUCKETS = ("day", "week")


class IdListField(forms.Field):
    """Deployment ids, repeated (`?deployment=1&deployment=2`) or comma-separated (`?deployment=1,2`)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        items = value if isinstance(value, list | tuple) else [value]
        ids: list[int] = []
        for item in items:
            for part in str(item).split(","):
                part = part.strip()
                if not part:
                    continue
                # A database id: ASCII digits ("²" is a digit to isdigit), within a signed 64-bit integer.
                if not (part.isascii() and part.isdigit()) or int(part) >= 2**63:
                    raise forms.ValidationError(f"'{part}' is not a deployment id.", code="invalid")
                ids.append(int(part))
        return sorted(set(ids))


class AnalyticsFilterForm(forms.Form):
    deployment = IdListField(required=False, help_text="Deployment ids (repeat or comma-separate).")
    flow = forms.CharField(required=False, max_length=200, help_text="Flow name, exact.")
    method = forms.CharField(required=False, max_length=200, help_text="Method name, exact.")
    reviewer = forms.CharField(required=False, max_length=254, help_text="Assignee email, case-insensitive.")
    since = forms.DateField(required=False, help_text="First day (UTC, YYYY-MM-DD).")
    until = forms.DateField(required=False, help_text="Last day, inclusive (UTC, YYYY-MM-DD); default today.")
    days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        help_text=f"Without since: the last N days (default {DEFAULT_DAYS}).",
    )
    bucket = forms.ChoiceField(
        required=False, choices=[(b, b) for b in BUCKETS], help_text="Volume per day or per ISO week."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until") or timezone.now().astimezone(UTC).date()
        if since and since > until:
            self.add_error("since", "Must not be after 'until'.")
        elif since and (until - since).days + 1 > MAX_DAYS:
            self.add_error("since", f"A period covers at most {MAX_DAYS} days.")
        return data


@dataclass(frozen=True)
class Filters:
    """Resolved filters. The period is [since, until) in UTC; `until` is exclusive."""

    deployments: tuple[int, ...]
    flow: str
    method: str
    reviewer: str
    since: datetime
    until: datetime
    bucket: str

    @property
    def first_day(self) -> date:
        return self.since.date()

    @property
    def last_day(self) -> date:
        return (self.until - timedelta(days=1)).date()

    def params(self) -> dict[str, Any]:
        """The filters as query parameters (for CSV links and the API's echo)."""
        return {
            "deployment": list(self.deployments),
            "flow": self.flow,
            "method": self.method,
            "reviewer": self.reviewer,
            "since": self.first_day.isoformat(),
            "until": self.last_day.isoformat(),
            "bucket": self.bucket,
        }

    def query_string(self) -> str:
        return urlencode({k: v for k, v in self.params().items() if v not in ("", [])}, doseq=True)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def resolve_filters(data: dict[str, Any], today: date | None = None) -> Filters:
    """Cleaned form data → Filters, applying the defaults (the last 30 days, day or week buckets)."""
    today = today or timezone.now().astimezone(UTC).date()
    last = data.get("until") or today
    first = data.get("since") or last - timedelta(days=(data.get("days") or DEFAULT_DAYS) - 1)
    span = (last - first).days + 1
    return Filters(
        deployments=tuple(data.get("deployment") or ()),
        flow=(data.get("flow") or "").strip(),
        method=(data.get("method") or "").strip(),
        reviewer=(data.get("reviewer") or "").strip().lower(),
        since=_midnight(first),
        until=_midnight(last + timedelta(days=1)),
        bucket=data.get("bucket") or ("day" if span <= DAILY_UP_TO else "week"),
    )


def analytics_action(principal: Any) -> Action:
    """Analytics need `manage_human_feedback`; an API key reads its own deployment's figures (read-only
    keys included: figures are reading)."""
    return "view" if isinstance(principal, ApiKeyPrincipal) else "manage"


def requests_for(principal: Any, filters: Filters) -> QuerySet[HITLRequest]:
    """The requests `principal` may analyse, narrowed by `filters`.

    A deployment the principal cannot see at all → 404; one it sees but does not manage → 403; no
    deployment to analyse at all → 403 (the same rules as every page and endpoint).
    """
    action = analytics_action(principal)
    if filters.deployments:
        wanted = set(filters.deployments)
        visible = set(
            Deployment.objects.filter(deployment_scope(principal, "view"), pk__in=wanted).values_list("pk", flat=True)
        )
        if visible != wanted:
            raise Http404("No such deployment.")
        allowed = set(
            Deployment.objects.filter(deployment_scope(principal, action), pk__in=wanted).values_list("pk", flat=True)
        )
        if allowed != wanted:
            raise PermissionDenied("Analytics need the manage_human_feedback permission on the deployment.")
    elif not Deployment.objects.filter(deployment_scope(principal, action)).exists():
        raise PermissionDenied("Analytics need the manage_human_feedback permission on a deployment.")
    queryset = HITLRequest.objects.restrict(principal, action)
    if filters.deployments:
        queryset = queryset.filter(deployment_id__in=filters.deployments)
    if filters.flow:
        queryset = queryset.filter(flow_name=filters.flow)
    if filters.method:
        queryset = queryset.filter(method_name=filters.method)
    if filters.reviewer:
        queryset = queryset.filter(assigned_to_email=filters.reviewer.strip().lower())
    return queryset.order_by()


def rollups_for(principal: Any, filters: Filters) -> QuerySet[Rollup]:
    """The rollups of the requests `requests_for` selects (call that first: it refuses strangers). The
    analytics scopes are whole deployments (`restrict()` for `manage`, an API key's own deployment), so
    the same deployments and the same filters select the same requests' rollups."""
    deployments = Deployment.objects.filter(deployment_scope(principal, analytics_action(principal)))
    queryset = Rollup.objects.filter(deployment__in=deployments.values("pk"))
    if filters.deployments:
        queryset = queryset.filter(deployment_id__in=filters.deployments)
    # `*` is no flow, method or assignee: the rows of all of them are not what such a filter asks for.
    if filters.flow:
        queryset = queryset.filter(flow_name=filters.flow).exclude(flow_name=ALL_FLOWS)
    if filters.method:
        queryset = queryset.filter(method_name=filters.method).exclude(method_name=ALL_METHODS)
    if filters.reviewer:
        queryset = queryset.filter(reviewer=filters.reviewer.strip().lower()).exclude(reviewer=ALL_REVIEWERS)
    return queryset.order_by()


def analysable_deployments(principal: Any) -> QuerySet[Deployment]:
    return Deployment.objects.filter(deployment_scope(principal, analytics_action(principal))).order_by("name", "pk")
