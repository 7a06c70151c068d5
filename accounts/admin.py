from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import ApiKey, Organization
from accounts.services import create_api_key, revoke_api_key


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


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

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # Keys cannot be edited (has_change_permission is list-only), but revoking is their one change.
        return request.user.has_perm("accounts.change_apikey")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        # Keys are made by the service so the secret is generated and shown exactly once.
        key, secret = create_api_key(
            obj.deployment, name=obj.name, access=obj.access, actor=request.user.get_username()
        )
        obj.pk = key.pk
        messages.warning(request, f"API key for {key.deployment}: {secret} — copy it now, it will not be shown again.")

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            revoke_api_key(key, actor=request.user.get_username())
        messages.success(request, "Revoked.")
