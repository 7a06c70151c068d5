from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from audit.lib.export import streaming_response
from audit.models import AuditEvent
from audit.services import start_audit_export


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the database refuses changes anyway, the admin does not offer them. The actions
    export the selection (or, with "select all", everything the filters match) as a file."""

    list_display = ("id", "created_at", "event_type", "actor", "source", "target_type", "target_id")
    list_filter = ("event_type", "source", "target_type")
    search_fields = ("actor", "target_id", "hash")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    actions = ["export_jsonl", "export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Export selected events as JSON Lines (with the hash chain)", permissions=["view"])
    def export_jsonl(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> HttpResponseBase:
        return self._export(request, queryset, "jsonl")

    @admin.action(description="Export selected events as CSV (with the hash chain)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> HttpResponseBase:
        return self._export(request, queryset, "csv")

    def _export(self, request: HttpRequest, queryset: QuerySet[AuditEvent], fmt: str) -> HttpResponseBase:
        selection = {
            "admin_filters": request.GET.urlencode(),
            "all_matching": request.POST.get("select_across") == "1",
        }
        export = start_audit_export(
            queryset, fmt=fmt, filters=selection, actor=request.user.get_username(), source="admin"
        )
        return streaming_response(queryset, fmt, export=export)
