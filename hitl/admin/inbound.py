"""Inbound email in the admin: every message received, what became of it (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from hitl.models import InboundEmail


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


# --- outbound webhooks -------------------------------------------------------------------------------
