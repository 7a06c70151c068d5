"""Ops-staff tools in the admin (issue 5): request actions that go through the services (cancel is in
hitl.admin), and the routing tester that answers "which rule and which email would this get?"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from hitl import services
from hitl.channels import telegram
from hitl.lib import crypto
from hitl.lib.addresses import clean_email
from hitl.lib.errors import HitlError
from hitl.lib.paths import resolve_path
from hitl.models import HITLRequest, RoutingRule, Source, Status
from hitl.routing.assign import choose_assignee, rule_matches
from hitl.routing.conditions import ConditionError
from hitl.views.forms import RuleTestForm


class ReassignActionForm(forms.Form):
    email = forms.EmailField(label="New assignee", max_length=254)
    note = forms.CharField(required=False, max_length=1000, help_text="Recorded in the audit log.")


class RequestActionsMixin(admin.ModelAdmin):
    """Reassign and resend for HITLRequestAdmin, through the same services as the pages and API."""

    def view_on_site(self, obj: HITLRequest) -> str:  # type: ignore[override]
        return reverse("hitl:review", args=[obj.pk])

    @admin.action(description="Reassign selected pending requests…")
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

    @admin.action(description="Resend the notification of selected pending requests")
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[HITLRequest]) -> None:
        sent = 0
        for obj in queryset.filter(status=Status.PENDING):
            try:
                services.resend_notification(obj.pk, actor=request.user.get_username(), source=Source.DASHBOARD)
                sent += 1
            except HitlError:
                pass
        messages.success(request, f"Notification sent again for {sent} request(s).")


@dataclass
class RuleVerdict:
    rule: RoutingRule
    matches: bool | None  # None: not evaluated (disabled, or after the deciding rule)
    note: str
    decides: bool = False


def evaluate_rules(
    rules: list[RoutingRule], *, method_name: str, flow_name: str, state: dict[str, Any]
) -> list[RuleVerdict]:
    """Why each rule did or did not take a sample request, in the order routing tries them."""
    verdicts: list[RuleVerdict] = []
    decided = False
    for rule in rules:
        if not rule.enabled:
            verdicts.append(RuleVerdict(rule, None, "switched off"))
            continue
        if decided:
            verdicts.append(RuleVerdict(rule, None, "not tried: an earlier rule matched"))
            continue
        try:
            matches = rule_matches(rule, method_name, flow_name, state)
        except ConditionError as exc:
            verdicts.append(RuleVerdict(rule, False, f"condition error: {exc}"))
            continue
        if not matches:
            verdicts.append(RuleVerdict(rule, False, "no match"))
            continue
        decided = True
        note = "matches"
        if rule.assign_from_input:
            value = resolve_path(state, rule.assign_from_input, None)
            email = clean_email(value)
            note = (
                f"matches; {rule.assign_from_input} = {email}"
                if email
                else f"matches; {rule.assign_from_input} is {value!r}, not an email"
            )
        verdicts.append(RuleVerdict(rule, True, note, decides=True))
    return verdicts


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


# --- Telegram settings (deployments and routing rules) ---------------------------------------------


class TelegramTokenForm(forms.ModelForm):
    """Adds a write-only bot token field: the token is encrypted on save and never shown again."""

    telegram_bot_token_input = forms.CharField(
        label="Telegram bot token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="From @BotFather, e.g. 123456789:AA…; stored encrypted. Leave empty to keep the current one.",
    )
    clear_telegram_bot_token = forms.BooleanField(label="Remove the bot token", required=False)

    def clean_telegram_bot_token_input(self) -> str:
        token = self.cleaned_data.get("telegram_bot_token_input") or ""
        if token and not telegram.TOKEN_RE.match(token):
            raise forms.ValidationError("That does not look like a bot token (digits, a colon, then 30+ characters).")
        return token

    def clean_telegram_chat_id(self) -> str:
        chat = (self.cleaned_data.get("telegram_chat_id") or "").strip()
        if chat and not telegram.CHAT_RE.match(chat):
            raise forms.ValidationError("A numeric chat id (e.g. -1001234567890) or @channelname.")
        return chat

    def save(self, commit: bool = True) -> Any:
        if self.cleaned_data.get("clear_telegram_bot_token"):
            self.instance.telegram_bot_token = ""
        elif self.cleaned_data.get("telegram_bot_token_input"):
            self.instance.telegram_bot_token = crypto.encrypt(self.cleaned_data["telegram_bot_token_input"])
        return super().save(commit)


def telegram_status(obj: Any) -> str:
    if obj is None or obj.pk is None:
        return "-"
    token = "a bot token is set" if obj.telegram_bot_token else "no bot token"
    chat = f"chat {obj.telegram_chat_id}" if obj.telegram_chat_id else "no chat"
    return f"{token}, {chat}."


class RoutingRuleForm(TelegramTokenForm):
    class Meta:
        model = RoutingRule
        fields = (
            "deployment",
            "name",
            "enabled",
            "priority",
            "method_pattern",
            "flow_pattern",
            "conditions",
            "assign_from_input",
            "assign_to_email",
            "reminder_after_minutes",
            "escalation_after_minutes",
            "escalation_emails",
            "telegram_chat_id",
        )
