"""Outbound webhooks in the admin: endpoints (secret shown once, rotatable), deliveries and attempts."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audit.models import EventType
from audit.services import record_event
from hitl.channels import webhook_outbox
from hitl.lib.errors import InvalidInput
from hitl.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        max_length=2000,
        assume_scheme="https",
        help_text="HTTPS (plain HTTP only with DEBUG or a host in HITL_EGRESS_ALLOWED_HOSTS).",
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event, including ones added later.",
    )

    class Meta:
        model = Webhook
        fields = ("deployment", "name", "url", "active", "events", "max_retries")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("active"):
            self.instance.disabled_reason = ""  # turned on again by a person: the old reason no longer holds
        if cleaned.get("url"):
            try:
                webhook_outbox.validate_webhook(cleaned["url"], cleaned.get("events"))
            except InvalidInput as exc:
                for field, errors in exc.errors.items():
                    self.add_error(field if field in self.fields else None, errors)
        return cleaned


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = (
        "__str__",
        "deployment",
        "url",
        "active",
        "disabled_reason",
        "event_list",
        "max_retries",
        "created_at",
    )
    list_filter = ("active", "deployment")
    search_fields = ("name", "url", "deployment__name")
    list_select_related = ("deployment",)
    readonly_fields = ("disabled_reason", "secret_rotated_at", "created_at", "updated_at", "recent_deliveries")
    actions = ["rotate_secret"]

    @admin.display(description="events")
    def event_list(self, obj: Webhook) -> str:
        return ", ".join(obj.events) if obj.events else "all"

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        actor = request.user.get_username()
        if change:
            super().save_model(request, obj, form, change)
            record_event(
                EventType.WEBHOOK_CHANGED,
                actor=actor,
                source="admin",
                target=obj,
                data={"action": "changed", "fields": form.changed_data, "url": obj.url, "active": obj.active},
            )
            return
        # Created by the service, so the secret is generated, encrypted and shown exactly once.
        webhook, secret = webhook_outbox.create_webhook(
            obj.deployment,
            url=obj.url,
            name=obj.name,
            events=obj.events,
            active=obj.active,
            max_retries=obj.max_retries,
            actor=actor,
        )
        obj.pk = webhook.pk
        messages.warning(
            request,
            f"Signing secret for {webhook}: {secret} — copy it now, it will not be shown again. "
            "Receivers verify X-Signature and webhook-signature with this same string (see the README).",
        )

    @admin.action(description="Rotate the signing secret of the selected webhooks", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            secret = webhook_outbox.rotate_webhook_secret(webhook.pk, actor=request.user.get_username())
            messages.warning(
                request, f"New signing secret for {webhook}: {secret} — copy it now, it will not be shown again."
            )

    @admin.display(description="Recent deliveries")
    def recent_deliveries(self, obj: Webhook) -> SafeString | str:
        if obj.pk is None:
            return "-"
        rows = obj.deliveries.order_by("-created_at", "-id")[:20]
        body = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:hitl_webhookdelivery_change", args=[d.pk]),
                    d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    d.event,
                    d.status,
                    d.attempt_count,
                    d.last_status_code or "",
                    d.last_error[:80],
                )
                for d in rows
            ),
        )
        every = reverse("admin:hitl_webhookdelivery_changelist") + f"?webhook__id__exact={obj.pk}"
        return format_html(
            "<table><tr><th>created</th><th>event</th><th>status</th><th>attempts</th><th>last status</th>"
            '<th>last error</th></tr>{}</table><p><a href="{}">All deliveries of this webhook</a></p>',
            body,
            every,
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "status_code", "error", "response_excerpt", "will_retry", "url")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


_CALLBACK = re.compile(r'("callback_url"\s*:\s*)"[^"]*"')


def redact_capabilities(body: str) -> str:
    """The delivery body with its callback URL (a capability that answers the request) blanked."""
    return _CALLBACK.sub(r'\1"[hidden: needs the change webhook delivery permission]"', body or "")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: every event sent to every webhook, each attempt inline, and "redeliver"."""

    list_display = (
        "created_at",
        "event",
        "webhook",
        "request_id",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event", "webhook__deployment", "webhook")
    search_fields = ("message_id", "=request__id", "webhook__url")
    list_select_related = ("webhook",)
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    actions = ["redeliver_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        names = [f.name for f in WebhookDelivery._meta.fields]
        if self.has_redeliver_permission(request):
            return names
        # A callback URL can answer the request: only those who may act on deliveries see it (§10).
        return [("body_without_capabilities" if name == "body" else name) for name in names]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_readonly_fields(request, obj)

    @admin.display(description="Body")
    def body_without_capabilities(self, obj: WebhookDelivery) -> str:
        return redact_capabilities(obj.body)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        # Deliveries are read-only rows, so their "change" permission is the right to send them again.
        return request.user.has_perm("hitl.change_webhookdelivery")

    @admin.action(description="Redeliver selected (same webhook-id, fresh retries)", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        actor = request.user.get_username()
        queued = sum(webhook_outbox.redeliver(d.pk, actor=actor) for d in queryset)
        skipped = queryset.count() - queued
        messages.success(
            request, f"Queued {queued} delivery(ies)." + (f" {skipped} still pending, left alone." if skipped else "")
        )
