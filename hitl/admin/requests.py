"""Requests in the admin: read-only records with actions (cancel, reassign, resend) that go through
the same services as the pages and the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from hitl import services
from hitl.lib.errors import HitlError
from hitl.models import Approver, Decision, HITLRequest, Resolution, Source, Status


class NotificationFilter(admin.SimpleListFilter):
    title = "notification"
    parameter_name = "notification"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unnotified", "Never notified (failed)"), ("failing", "Last attempt failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[HITLRequest]) -> QuerySet[HITLRequest]:
        if self.value() == "unnotified":
            # Every attempt failed: the assignee has heard nothing of it.
            return queryset.filter(notified_at__isnull=True, notification_failures__gt=0)
        if self.value() == "failing":
            return queryset.exclude(notification_error="")
        return queryset


class ReassignActionForm(forms.Form):
    email = forms.EmailField(label="New assignee", max_length=254)
    note = forms.CharField(required=False, max_length=1000, help_text="Recorded in the audit log.")


class RequestActionsMixin(admin.ModelAdmin):
    """Reassign and resend for HITLRequestAdmin, through the same services as the pages and API."""

    def view_on_site(self, obj: HITLRequest) -> str:  # type: ignore[override]
        return reverse("hitl:review", args=[obj.pk])

    @admin.action(description="Reassign selected pending requests…", permissions=["change"])
    def reassign_selected(self, request: HttpRequest, queryset: QuerySet[HITLRequest]) -> HttpResponse | None:
        pending = queryset.filter(status=Status.PENDING)
        form = ReassignActionForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            actor = request.user.get_username()
            done = 0
            for obj in pending:
                try:
                    services.reassign_request(
                        obj.pk,
                        email=form.cleaned_data["email"],
                        note=form.cleaned_data["note"],
                        actor=actor,
                        source=Source.DASHBOARD,
                    )
                    done += 1
                except HitlError:
                    pass  # answered meanwhile: the refusal is audited
            messages.success(request, f"Reassigned {done} request(s) to {form.cleaned_data['email'].lower()}.")
            return None
        context = {
            **admin.site.each_context(request),
            "title": "Reassign requests",
            "form": form,
            "requests": pending,
            "skipped": queryset.count() - pending.count(),
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "opts": HITLRequest._meta,
        }
        return TemplateResponse(request, "admin/hitl/hitlrequest/reassign.html", context)

    @admin.action(description="Resend the notification of selected pending requests", permissions=["change"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[HITLRequest]) -> None:
        sent = 0
        for obj in queryset.filter(status=Status.PENDING):
            try:
                services.resend_notification(obj.pk, actor=request.user.get_username(), source=Source.DASHBOARD)
                sent += 1
            except HitlError:
                pass
        messages.success(request, f"Notification sent again for {sent} request(s).")


class ResolutionInline(admin.StackedInline):
    model = Resolution
    can_delete = False
    readonly_fields = ("status", "outcome", "source", "responder", "result", "answered_within_sla", "created_at")
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows the services write (SPEC §13 seats and decisions): shown on the request, never edited here."""

    can_delete = False
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApproverInline(ReadOnlyInline):
    model = Approver
    verbose_name_plural = "Approvers (several approvers: who may decide, and whether their notification went)"
    fields = ("email", "via_group", "active", "replaced_by", "notified_at", "notification_error", "ended_at")
    readonly_fields = fields


class DecisionInline(ReadOnlyInline):
    model = Decision
    verbose_name_plural = "Decisions so far"
    fields = ("approver", "outcome", "choices", "feedback", "source", "actor", "on_behalf_of", "decided_at")
    readonly_fields = fields


@admin.register(HITLRequest)
class HITLRequestAdmin(RequestActionsMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "deployment",
        "method_name",
        "status",
        "assigned_to_email",
        "assignment_step",
        "created_at",
        "due_at",
        "sla_due_at",
        "overdue",
        "reminder_sent_at",
        "escalation_level",
        "notified_at",
        "notification_failed",
    )
    list_filter = ("status", "overdue", NotificationFilter, "mode", "channel", "assignment_step", "deployment")
    search_fields = ("id", "flow_id", "method_name", "assigned_to_email", "message")
    date_hierarchy = "created_at"
    inlines = [ApproverInline, DecisionInline, ResolutionInline]
    actions = ["cancel_selected", "reassign_selected", "resend_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in HITLRequest._meta.fields]

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return list(self.inlines) if obj is not None and obj.has_pool else [ResolutionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(boolean=True, description="Notification failed")
    def notification_failed(self, obj: HITLRequest) -> bool:
        return bool(obj.notification_error)

    @admin.action(description="Cancel selected pending requests", permissions=["change"])
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
