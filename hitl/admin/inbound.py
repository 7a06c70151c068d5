"""Email in the admin: every message received and what became of it, every notification sent and
whether it bounced (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from hitl.models import InboundEmail, SentEmail


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


class BouncedFilter(admin.SimpleListFilter):
    title = "bounced"
    parameter_name = "bounced"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Bounced"), ("no", "Not bounced")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() in ("yes", "no"):
            return queryset.filter(bounced_at__isnull=self.value() == "no")
        return queryset


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    """Every notification email sent, and the bounce reported for it later, if any."""

    list_display = ("sent_at", "to", "event", "request", "bounced_at", "bounce")
    list_filter = (BouncedFilter, "event")
    search_fields = ("to", "message_id", "esp_message_id", "request__id")
    date_hierarchy = "sent_at"
    list_select_related = ("request",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in SentEmail._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- outbound webhooks -------------------------------------------------------------------------------
