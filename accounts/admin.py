from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from guardian.admin import GuardedModelAdmin

from accounts.models import ApiKey, Deployment, Organization
from accounts.services import create_api_key, revoke_api_key
from audit.models import EventType
from audit.services import record_event
from hitl.models import RoutingRule


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0
    fields = (
        "priority",
        "name",
        "enabled",
        "method_pattern",
        "flow_pattern",
        "conditions",
        "assign_from_input",
        "assign_to_email",
        "reminder_after_minutes",
        "escalation_after_minutes",
        "escalation_emails",
    )
    ordering = ("priority", "id")


@admin.register(Deployment)
class DeploymentAdmin(GuardedModelAdmin):
    """Guardian's "Object permissions" page grants manage/respond per user or group."""

    list_display = (
        "name",
        "organization",
        "creator",
        "email_notifications",
        "sla_target_minutes",
        "auto_response_enabled",
    )
    list_filter = ("organization", "email_notifications", "auto_response_enabled")
    search_fields = ("name", "creator__email", "organization__name")
    autocomplete_fields = ("creator",)
    inlines = [RoutingRuleInline]
    fieldsets = (
        (None, {"fields": ("organization", "name", "creator")}),
        ("Notifications", {"fields": ("email_notifications", "link_ttl_seconds")}),
        ("SLA", {"fields": ("sla_target_minutes",)}),
        (
            "Reminders and escalation",
            {
                "fields": ("reminder_after_minutes", "escalation_after_minutes", "escalation_emails"),
                "description": "Routing rules can override these for the requests they assign.",
            },
        ),
        (
            "Auto-response",
            {
                "fields": (
                    "auto_response_enabled",
                    "auto_response_timeout_minutes",
                    "auto_response_default_outcome",
                    "auto_response_emit_options",
                )
            },
        ),
    )

    def save_model(self, request: HttpRequest, obj: Deployment, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        record_event(
            EventType.CONFIG_CHANGED,
            actor=request.user.get_username(),
            source="admin",
            target=obj,
            deployment_id=obj.pk,
            data={"action": "deployment.changed" if change else "deployment.created", "fields": form.changed_data},
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        for obj in [*formset.new_objects, *(o for o, _ in formset.changed_objects)]:
            record_event(
                EventType.RULE_CHANGED,
                actor=request.user.get_username(),
                source="admin",
                target=obj,
                data={"name": obj.name},
            )
        for obj in formset.deleted_objects:
            record_event(
                EventType.RULE_CHANGED,
                actor=request.user.get_username(),
                source="admin",
                target_type="routingrule",
                target_id=str(obj.pk),
                deployment_id=obj.deployment_id,
                data={"name": obj.name, "deleted": True},
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "deployment", "prefix", "access", "created_at", "last_used_at", "revoked_at")
    list_filter = ("access", "deployment")
    search_fields = ("name", "prefix", "deployment__name")
    fields = ("deployment", "name", "access", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        # Keys are made by the service so the secret is generated and shown exactly once.
        key, secret = create_api_key(
            obj.deployment, name=obj.name, access=obj.access, actor=request.user.get_username()
        )
        obj.pk = key.pk
        messages.warning(request, f"API key for {key.deployment}: {secret} — copy it now, it will not be shown again.")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            revoke_api_key(key, actor=request.user.get_username())
        messages.success(request, "Revoked.")
