"""Routing rules in the admin, with the routing tester (`…/routingrule/test/`): a sample method name
and state in, the deciding rule and the assignee out."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl.admin.slack import SLACK_FIELDS, SlackSettingsForm, slack_status
from hitl.admin.telegram import TelegramTokenForm, telegram_status
from hitl.models import HITLRequest, RoutingRule
from hitl.routing.assign import choose_assignee
from hitl.routing.tester import evaluate_rules


class RuleTestForm(forms.Form):
    """The admin's "test this rule" helper: which rule and email would a sample request get?"""

    deployment = forms.ModelChoiceField(queryset=Deployment.objects.order_by("name"))
    method_name = forms.CharField(max_length=200, required=False, help_text="e.g. approve_payment")
    flow_name = forms.CharField(max_length=200, required=False)
    state = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "placeholder": '{"amount": 12000}'}),
        help_text="The flow state as a JSON object.",
    )
    assign_to = forms.EmailField(required=False, help_text="An explicit assign_to (overrides every rule).")

    def clean_state(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("state") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The state must be a JSON object.")
        return value


class RoutingTesterMixin(admin.ModelAdmin):
    """Adds `…/routingrule/test/` to RoutingRuleAdmin: a sample method name and state in, the
    deciding rule and the assignee out, with every rule's verdict (the real `choose_assignee`)."""

    def get_urls(self) -> list[Any]:
        tester = self.admin_site.admin_view(self.rule_tester_view)
        return [path("test/", tester, name="hitl_routingrule_test"), *super().get_urls()]

    def rule_tester_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        initial: dict[str, Any] = {}
        highlight = request.GET.get("rule", "")
        rule = RoutingRule.objects.filter(pk=highlight).first() if highlight.isdigit() else None
        if rule is not None:
            initial = {"deployment": rule.deployment_id}
            if not any(ch in rule.method_pattern for ch in "*?["):
                initial["method_name"] = rule.method_pattern
        elif request.GET.get("deployment", "").isdigit():
            initial = {"deployment": request.GET["deployment"]}
        form = RuleTestForm(request.POST or None, initial=initial)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Test routing",
            "form": form,
            "opts": RoutingRule._meta,
            "highlight": rule.pk if rule else None,
        }
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            deployment = data["deployment"]
            rules = list(deployment.routing_rules.order_by("priority", "id"))
            assignment = choose_assignee(
                [r for r in rules if r.enabled],
                creator_email=deployment.creator_email,
                method_name=data["method_name"],
                flow_name=data["flow_name"],
                state=data["state"],
                explicit=data["assign_to"] or None,
            )
            context.update(
                assignment=assignment,
                step_label=dict(HITLRequest._meta.get_field("assignment_step").flatchoices).get(  # type: ignore[union-attr]
                    assignment.step, assignment.step
                ),
                verdicts=evaluate_rules(
                    rules, method_name=data["method_name"], flow_name=data["flow_name"], state=data["state"]
                ),
                explicit=bool(data["assign_to"]),
                deployment=deployment,
            )
        return TemplateResponse(request, "admin/hitl/routingrule/test.html", context)


# What a rule matches and does, in the order the rule's form and the deployment's inline show it.
RULE_SETTINGS = (
    "method_pattern",
    "flow_pattern",
    "conditions",
    "assign_from_input",
    "assign_to_email",
    "approvers",
    "policy",
    "required",
    "veto",
    "reminder_after_minutes",
    "escalation_after_minutes",
    "escalation_emails",
    "telegram_chat_id",
)


class RoutingRuleForm(SlackSettingsForm, TelegramTokenForm):
    class Meta:
        model = RoutingRule
        fields = (
            "deployment",
            "name",
            "enabled",
            "priority",
            *RULE_SETTINGS,
            "slack_channel_id",
        )


@admin.register(RoutingRule)
class RoutingRuleAdmin(RoutingTesterMixin, admin.ModelAdmin):
    form = RoutingRuleForm
    readonly_fields = ("telegram", "slack")
    fieldsets = (
        (None, {"fields": ("deployment", "name", "enabled", "priority")}),
        ("Match", {"fields": ("method_pattern", "flow_pattern", "conditions")}),
        ("Assign", {"fields": ("assign_from_input", "assign_to_email")}),
        ("Several approvers (SPEC §13)", {"fields": ("approvers", "policy", "required", "veto")}),
        (
            "Reminders and escalation",
            {"fields": ("reminder_after_minutes", "escalation_after_minutes", "escalation_emails")},
        ),
        (
            "Telegram (overrides the deployment's)",
            {"fields": ("telegram_chat_id", "telegram_bot_token_input", "clear_telegram_bot_token", "telegram")},
        ),
        ("Slack (overrides the deployment's)", {"fields": SLACK_FIELDS}),
    )
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

    @admin.display(description="Telegram")
    def telegram(self, obj: RoutingRule) -> str:
        return telegram_status(obj)

    @admin.display(description="Slack")
    def slack(self, obj: RoutingRule) -> str:
        return slack_status(obj)

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:

        super().save_model(request, obj, form, change)
        record_event(
            EventType.RULE_CHANGED,
            actor=request.user.get_username(),
            source="admin",
            target=obj,
            data={"name": obj.name, "fields": form.changed_data, "created": not change},
        )
