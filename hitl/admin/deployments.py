"""Deployments in the admin: HITL settings, routing rules inline, Telegram, and guardian's object
permissions. Registered here, above `accounts`, because it edits the requests app's rules too."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from guardian.admin import GuardedModelAdmin
from guardian.shortcuts import get_group_perms, get_user_perms

from accounts.lib.access import MANAGE_PERM
from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl.admin.rules import RULE_SETTINGS
from hitl.admin.slack import SLACK_FIELDS, SlackSettingsForm, slack_status, test_slack
from hitl.admin.telegram import TelegramIdentityInline, TelegramTokenForm, audit_identities, telegram_status
from hitl.channels.base import ChannelError
from hitl.channels.telegram import register_webhook
from hitl.models import RoutingRule, TelegramIdentity


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0
    fields = ("priority", "name", "enabled", *RULE_SETTINGS)
    ordering = ("priority", "id")


class DeploymentForm(SlackSettingsForm, TelegramTokenForm):
    class Meta:
        model = Deployment
        fields = (
            "organization",
            "name",
            "creator",
            "email_notifications",
            "link_ttl_seconds",
            "sla_target_minutes",
            "reminder_after_minutes",
            "escalation_after_minutes",
            "escalation_emails",
            "auto_response_enabled",
            "auto_response_timeout_minutes",
            "auto_response_default_outcome",
            "auto_response_emit_options",
            "telegram_chat_id",
            "slack_channel_id",
        )


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
    form = DeploymentForm
    inlines = [RoutingRuleInline, TelegramIdentityInline]
    readonly_fields = ("routing_tools", "telegram", "slack")
    actions = ["register_telegram_webhook", test_slack]
    fieldsets = (
        (None, {"fields": ("organization", "name", "creator")}),
        ("Routing", {"fields": ("routing_tools",)}),
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
        (
            "Telegram",
            {
                "fields": ("telegram_chat_id", "telegram_bot_token_input", "clear_telegram_bot_token", "telegram"),
                "description": "For requests created with channel=telegram. After setting a bot, run the "
                "“Register the Telegram webhook” action on the deployment list. For requests with "
                "several approvers, link each approver's Telegram username below (Telegram identities).",
            },
        ),
        (
            "Slack",
            {
                "fields": SLACK_FIELDS,
                "description": "For requests created with channel=slack. Set the Slack app's interactivity "
                "request URL to HITL_BASE_URL/slack/<deployment id>/interactions/, then run “Test Slack” on "
                "the deployment list.",
            },
        ),
    )

    @admin.display(description="Routing rules")
    def routing_tools(self, obj: Deployment) -> str:
        if obj.pk is None:
            return "Save the deployment first; its rules are edited below."
        return format_html(
            'Edited in the table below (first match by priority wins). <a href="{}">Test routing</a> — which '
            'rule and email a sample method name and state would get. <a href="{}">Grant access</a> '
            "(manage / respond, to users or groups).",
            reverse("admin:hitl_routingrule_test") + f"?deployment={obj.pk}",
            reverse("admin:accounts_deployment_permissions", args=[obj.pk]),
        )

    @admin.display(description="Status")
    def telegram(self, obj: Deployment) -> str:
        return telegram_status(obj)

    @admin.display(description="Status")
    def slack(self, obj: Deployment) -> str:
        return slack_status(obj)

    @admin.action(description="Register the Telegram webhook of the selected deployments", permissions=["change"])
    def register_telegram_webhook(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        for deployment in queryset:
            try:
                url = register_webhook(deployment)
            except ChannelError as exc:
                messages.error(request, f"{deployment}: {exc.detail}")
                continue
            record_event(
                EventType.CONFIG_CHANGED,
                actor=request.user.get_username(),
                source="admin",
                target=deployment,
                deployment_id=deployment.pk,
                data={"action": "telegram.webhook_registered", "url": url},
            )
            messages.success(request, f"{deployment}: Telegram now sends button presses to {url}.")

    # Granting object permissions needs manage on that deployment, or superuser (SPEC §10): guardian
    # itself lets anyone who may change deployments grant anything on every one.
    def _may_grant(self, request: HttpRequest, object_pk: Any) -> None:
        deployment = Deployment.objects.filter(pk=object_pk).first()
        user: Any = request.user
        if deployment is None or not (user.is_superuser or user.has_perm(MANAGE_PERM, deployment)):
            raise PermissionDenied("Granting access needs the manage permission on this deployment.")

    def obj_perms_manage_view(self, request: HttpRequest, object_pk: Any) -> HttpResponse:
        self._may_grant(request, object_pk)
        return super().obj_perms_manage_view(request, object_pk)

    # Permission changes on the "Object permissions" pages are audited (SPEC §10).
    def obj_perms_manage_user_view(self, request: HttpRequest, object_pk: Any, user_id: Any) -> HttpResponse:
        self._may_grant(request, object_pk)
        user = get_user_model().objects.filter(pk=user_id).first()
        return self._audited_perms(request, object_pk, "user", user, get_user_perms, super().obj_perms_manage_user_view)

    def obj_perms_manage_group_view(self, request: HttpRequest, object_pk: Any, group_id: Any) -> HttpResponse:
        self._may_grant(request, object_pk)
        group = Group.objects.filter(pk=group_id).first()
        return self._audited_perms(
            request, object_pk, "group", group, get_group_perms, super().obj_perms_manage_group_view
        )

    def _audited_perms(
        self, request: HttpRequest, object_pk: Any, kind: str, holder: Any, perms_of: Any, view: Any
    ) -> HttpResponse:
        deployment = Deployment.objects.filter(pk=object_pk).first()
        before = (
            set(perms_of(holder, deployment).values_list("codename", flat=True)) if holder and deployment else set()
        )
        response = view(request, object_pk, holder.pk if holder else None)
        if request.method == "POST" and holder is not None and deployment is not None:
            after = set(perms_of(holder, deployment).values_list("codename", flat=True))
            if after != before:
                record_event(
                    EventType.PERMISSION_CHANGED,
                    actor=request.user.get_username(),
                    source="admin",
                    target=deployment,
                    deployment_id=deployment.pk,
                    data={
                        kind: str(holder),
                        "added": sorted(after - before),
                        "removed": sorted(before - after),
                    },
                )
        return response

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
        if formset.model is TelegramIdentity:
            audit_identities(request, form.instance, formset)
            return
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
