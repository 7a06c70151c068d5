"""`GET /api/v1/audit/?format=csv|jsonl`: the audit log the principal may read, streamed (SPEC §7, §10)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.lib.access import ApiKeyPrincipal, deployment_scope, principal_label
from accounts.models import Deployment
from audit.lib.export import AuditFilters, streaming_response
from audit.models import AuditEvent, EventType
from audit.services import start_audit_export
from hitl.lib.api.errors import ErrorSerializer


class AuditQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["jsonl", "csv"], default="jsonl")
    since = serializers.DateTimeField(required=False, help_text="ISO 8601 date or date-time, inclusive.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601 date or date-time, exclusive.")
    event_type = serializers.CharField(required=False, help_text="Comma-separated, e.g. response.submitted.")
    request = serializers.UUIDField(required=False, help_text="Events about this request.")
    target_type = serializers.CharField(required=False, max_length=40)
    target_id = serializers.CharField(required=False, max_length=64)
    actor = serializers.CharField(required=False, max_length=254, help_text="Case-insensitive.")
    source = serializers.CharField(  # type: ignore[assignment]
        required=False, max_length=20, help_text="email, dashboard, api, admin, cli, ..."
    )
    deployment = serializers.IntegerField(required=False, min_value=1)
    after_id = serializers.IntegerField(
        required=False, min_value=0, help_text="Only events after this id (resume or fetch increments)."
    )

    def validate_event_type(self, value: str) -> list[str]:
        types = [t.strip() for t in value.split(",") if t.strip()]
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise serializers.ValidationError(f"Unknown event type: {', '.join(unknown)}.")
        return types

    def filters(self) -> AuditFilters:
        data = self.validated_data
        target = (
            {"target_type": "hitlrequest", "target_id": str(data["request"])}
            if data.get("request")
            else {"target_type": data.get("target_type", ""), "target_id": data.get("target_id", "")}
        )
        return AuditFilters(
            since=data.get("since"),
            until=data.get("until"),
            event_types=tuple(data.get("event_type") or ()),
            actor=data.get("actor", ""),
            source=data.get("source", ""),
            deployment=data.get("deployment"),
            after_id=data.get("after_id"),
            **target,
        )


class _FormatIsOurs(BaseContentNegotiation):
    """Here `?format=` picks the export's format, not a DRF renderer; errors are JSON."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _events_for(principal: Any, deployment: int | None) -> QuerySet[AuditEvent]:
    """The events `principal` may read. A deployment it cannot see → 404; one it sees but does not
    manage, or no deployment to read at all → 403."""
    events = AuditEvent.objects.restrict(principal)
    if isinstance(principal, ApiKeyPrincipal):
        if deployment not in (None, principal.deployment_id):
            raise Http404("No such deployment.")
        return events
    if principal.is_superuser or principal.has_perm("audit.view_auditevent"):
        return events
    managed = Deployment.objects.filter(deployment_scope(principal, "manage"))
    if deployment is None:
        if not managed.exists():
            raise PermissionDenied("Reading the audit log needs manage_human_feedback on a deployment.")
    elif not managed.filter(pk=deployment).exists():
        if not Deployment.objects.filter(deployment_scope(principal, "view"), pk=deployment).exists():
            raise Http404("No such deployment.")
        raise PermissionDenied("Reading the audit log needs manage_human_feedback on the deployment.")
    return events


class AuditExportView(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        operation_id="audit_export",
        parameters=[AuditQuerySerializer],
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR, description="One JSON object per line: id, the hashed columns, prev_hash, hash."
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same columns; data as JSON."),
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        """Stream the audit events the caller may read, oldest first, as JSON Lines or CSV.

        Every export is itself recorded as an `audit.exported` event (not part of its own file); the
        headers name it and the last exported hash (`X-Audit-Export-Event`, `X-Audit-Export-Last-Hash`).
        Verify a file with `manage.py audit_verify --file FILE` or `audit/lib/verify_export.py`.
        """
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.filters()
        principal = request.user
        events = _events_for(principal, filters.deployment).filter(filters.q())
        deployment_id = filters.deployment
        if deployment_id is None and isinstance(principal, ApiKeyPrincipal):
            deployment_id = principal.deployment_id
        fmt = query.validated_data["format"]
        export = start_audit_export(
            events,
            fmt=fmt,
            filters=filters.describe(),
            actor=principal_label(principal),
            source="api",
            deployment_id=deployment_id,
        )
        return streaming_response(events, fmt, export=export)
