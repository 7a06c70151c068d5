from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hitl import services
from hitl.errors import HitlError
from hitl.models import HITLRequest, InboundEmail, Resolution, RoutingRule


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "deployment",
        "priority",
        "enabled",
        "method_pattern",
        "flow_pattern",
        "assign_from_input",
        "assign_to_email",
    )
    list_filter = ("enabled", "deployment")
    list_editable = ("priority", "enabled")
    search_fields = ("name", "method_pattern", "assign_to_email", "assign_from_input")
    ordering = ("deployment", "priority", "id")

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:
        from audit.models import EventType
        from audit.services import record_event

        super().save_model(request, obj, form, change)
        record_event(
            EventType.RULE_CHANGED,
            actor=request.user.get_username(),
            source="admin",
            target=obj,
            data={"name": obj.name, "fields": form.changed_data, "created": not change},
        )


class ResolutionInline(admin.StackedInline):
    model = Resolution
    can_delete = False
    readonly_fields = ("status", "outcome", "source", "responder", "result", "answered_within_sla", "created_at")
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(HITLRequest)
class HITLRequestAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "deployment",
        "method_name",
        "status",
        "assigned_to_email",
        "assignment_step",
        "created_at",
        "due_at",
        "notified_at",
        "notification_failed",
    )
    list_filter = ("status", "mode", "channel", "assignment_step", "deployment")
    search_fields = ("id", "flow_id", "method_name", "assigned_to_email", "message")
    date_hierarchy = "created_at"
    inlines = [ResolutionInline]
    actions = ["cancel_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in HITLRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(boolean=True, description="Notification failed")
    def notification_failed(self, obj: HITLRequest) -> bool:
        return bool(obj.notification_error)

    @admin.action(description="Cancel selected pending requests")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[HITLRequest]) -> None:
        cancelled = 0
        for obj in queryset.filter(status="pending"):
            try:
                services.cancel_request(
                    obj.pk, actor=request.user.get_username(), source="dashboard", reason="cancelled in admin"
                )
                cancelled += 1
            except HitlError:
                pass  # answered meanwhile: the refusal is audited
        messages.success(request, f"Cancelled {cancelled} request(s).")


@admin.register(InboundEmail)
class InboundEmailAdmin(admin.ModelAdmin):
    """Every inbound email and what became of it (accepted, refused with the reason, ignored)."""

    list_display = ("created_at", "sender", "outcome", "reason", "request", "received_via", "subject")
    list_filter = ("outcome", "reason", "received_via")
    search_fields = ("sender", "subject", "message_id", "request__id")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in InboundEmail._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
