from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from flows.models import DeploymentFlow, FlowRun, FlowStep
from flows.registry import flow_names


class DeploymentFlowForm(forms.ModelForm):
    flow_name = forms.ChoiceField(choices=())

    class Meta:
        model = DeploymentFlow
        fields = ["deployment", "flow_name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Flows are registered in code: offer exactly those.
        self.fields["flow_name"].choices = [(name, name) for name in flow_names()]  # type: ignore[attr-defined]


@admin.register(DeploymentFlow)
class DeploymentFlowAdmin(admin.ModelAdmin):
    form = DeploymentFlowForm
    list_display = ("flow_name", "deployment")
    list_filter = ("flow_name",)
    search_fields = ("flow_name", "deployment__name")


class FlowStepInline(admin.TabularInline):
    model = FlowStep
    extra = 0
    can_delete = False
    fields = ("seq", "method_name", "trigger", "status", "duration_ms", "request", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FlowRun)
class FlowRunAdmin(admin.ModelAdmin):
    list_display = ("id", "flow_name", "deployment", "status", "outcome", "created_at", "finished_at")
    list_filter = ("status", "flow_name", "deployment")
    search_fields = ("id", "flow_name")
    date_hierarchy = "created_at"
    inlines = [FlowStepInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in FlowRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
