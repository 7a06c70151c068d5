"""Shapes of the request API. Input validation lives in hitl.lib.request_input (shared with the flow
runtime); the input serializers here document the payloads in the OpenAPI schema."""

from __future__ import annotations

from functools import cache
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.lib.access import may_hold_capabilities
from hitl.lib.links import callback_url
from hitl.models import Channel, HITLRequest, Mode, OnTimeout, Policy
from hitl.results import empty_result
from hitl.services.decisions import pending_result


class ApproverDecisionSerializer(serializers.Serializer):
    responder = serializers.CharField()
    outcome = serializers.CharField(allow_null=True)
    feedback = serializers.CharField(allow_blank=True)
    source = serializers.CharField()  # type: ignore[assignment]
    decided_at = serializers.CharField()
    content_sha256 = serializers.CharField(required=False, help_text="SHA-256 of the content decided on (§14).")
    form = serializers.DictField(required=False, help_text="Form mode: this approver's values (SPEC §14).")


class SeatSerializer(serializers.Serializer):
    email = serializers.CharField()
    via_group = serializers.CharField(allow_blank=True)
    decided = serializers.BooleanField()
    notification_error = serializers.CharField(allow_blank=True, help_text="Its last failed notification (a bounce).")


class ResultSerializer(serializers.Serializer):
    response_type = serializers.ChoiceField(choices=["emit", "approval", "choice", "text", "form"])
    outcome = serializers.CharField(allow_null=True)
    feedback = serializers.CharField(allow_blank=True)
    text = serializers.CharField(allow_blank=True)
    choice = serializers.DictField()
    choices = serializers.ListField(child=serializers.DictField())
    files = serializers.ListField()
    metadata = serializers.DictField()
    source = serializers.CharField(allow_null=True)  # type: ignore[assignment]
    responder = serializers.CharField(allow_null=True)
    responded_at = serializers.CharField(allow_null=True)
    method_name = serializers.CharField(allow_blank=True)
    output = serializers.CharField(allow_blank=True)
    edited_output = serializers.CharField(allow_null=True)
    decisions = ApproverDecisionSerializer(many=True, required=False, help_text="Several approvers only (SPEC §13).")
    content_sha256 = serializers.CharField(
        allow_null=True, help_text="SHA-256 (hex) of the content, or the edited content, the answer was given on."
    )
    form = serializers.DictField(
        required=False, allow_null=True, help_text="Form mode: the validated values, typed (SPEC §14)."
    )
    edited_fields = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Form mode: fields whose value differs from initial."
    )


def result_of(request: HITLRequest) -> dict[str, Any]:
    resolution = getattr(request, "resolution", None) if not request.is_pending else None
    if resolution is not None:
        return resolution.result
    return pending_result(request) if request.has_pool else empty_result(request)


class RequestSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id", read_only=True)
    timeout = serializers.IntegerField(source="timeout_seconds", read_only=True, allow_null=True)
    link_ttl = serializers.IntegerField(source="link_ttl_seconds", read_only=True, allow_null=True)
    assign_to = serializers.CharField(source="requested_assignee", read_only=True)
    assignment = serializers.SerializerMethodField()
    callback_url = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    pool = serializers.SerializerMethodField()
    approvers = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="The pool as given (emails, group:<name>)."
    )
    policy = serializers.CharField(read_only=True, help_text='any, all, quorum; "" for a single assignee.')
    requested_by = serializers.CharField(read_only=True, help_text='Who asked (can never approve it), or "".')
    schema = serializers.JSONField(source="ordered_schema", read_only=True, help_text="form mode (SPEC §14); {} else.")
    initial = serializers.JSONField(source="form_initial", read_only=True, help_text="form mode: the pre-fill.")

    class Meta:
        model = HITLRequest
        fields = [
            "id",
            "deployment",
            "flow_id",
            "flow_name",
            "method_name",
            "message",
            "content",
            "mode",
            "emit_options",
            "options",
            "multiple",
            "state",
            "metadata",
            "assign_to",
            "channel",
            "timeout",
            "default_outcome",
            "on_timeout",
            "link_ttl",
            "editable",
            "schema",
            "initial",
            "approvers",
            "policy",
            "required",
            "veto",
            "requested_by",
            "pool",
            "status",
            "assigned_to_email",
            "assignment",
            "created_at",
            "due_at",
            "sla_due_at",
            "resolved_at",
            "notified_at",
            "notification_error",
            "callback_url",
            "result",
            "notified_at",
            "notification_failures",
            "notification_error",
        ]
        read_only_fields = fields

    def to_representation(self, instance: HITLRequest) -> dict[str, Any]:
        # ModelSerializer builds its ~30 fields afresh for every serializer instance (model
        # introspection), which cost more than rendering them. These fields are read-only and use no
        # context, so one bound set serves every instance; the output is DRF's own, field by field.
        # The callback URL answers the request on its own: only those who may act get it (SPEC §10).
        # Without a principal in the context nobody is entitled: it is left out.
        hide_callback = not may_hold_capabilities(self.context.get("principal"), instance.deployment_id)
        ret: dict[str, Any] = {}
        for field in _request_fields():
            if hide_callback and field.field_name == "callback_url":
                continue
            attribute = field.get_attribute(instance)
            ret[str(field.field_name)] = None if attribute is None else field.to_representation(attribute)
        return ret

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "step": {"type": "string"},
                "rule_id": {"type": "integer", "nullable": True},
                "rule_name": {"type": "string"},
            },
        }
    )
    def get_assignment(self, obj: HITLRequest) -> dict[str, Any]:
        shown = {"step": obj.assignment_step, "rule_id": obj.assigned_rule_id, "rule_name": obj.assigned_rule_name}
        if obj.assignment_problems:
            shown["condition_errors"] = obj.assignment_problems
        return shown

    @extend_schema_field(SeatSerializer(many=True))
    def get_pool(self, obj: HITLRequest) -> list[dict[str, Any]]:
        """Who is in the pool (groups resolved at create), and who has decided (SPEC §13); [] classic."""
        if not obj.has_pool:
            return []
        decided = set(obj.decisions.values_list("approver", flat=True))
        return [
            {
                "email": seat.email,
                "via_group": seat.via_group,
                "decided": seat.email in decided,
                "notification_error": seat.notification_error,
            }
            for seat in obj.approver_seats.filter(active=True).order_by("position", "id")
        ]

    @extend_schema_field({"type": "string", "description": "Only for full keys and managers (SPEC §10)."})
    def get_callback_url(self, obj: HITLRequest) -> str:
        return callback_url(obj)

    @extend_schema_field(ResultSerializer)
    def get_result(self, obj: HITLRequest) -> dict[str, Any]:
        return result_of(obj)


@cache
def _request_fields() -> list[serializers.Field]:  # type: ignore[type-arg]
    return list(RequestSerializer()._readable_fields)


class RequestCreateSerializer(serializers.Serializer):
    """Documentation of POST /api/v1/requests/ (validated by hitl.lib.request_input)."""

    deployment = serializers.IntegerField(required=False, help_text="Session users only; API keys imply it.")
    message = serializers.CharField()
    content = serializers.CharField(required=False, help_text="Markdown.")
    flow_id = serializers.CharField(required=False)
    flow_name = serializers.CharField(required=False)
    method_name = serializers.CharField(required=False)
    mode = serializers.ChoiceField(
        choices=Mode.choices,
        required=False,
        help_text="emit when emit_options is given, choices when options is, else text (free-form feedback).",
    )
    emit_options = serializers.ListField(child=serializers.CharField(), required=False)
    options = serializers.ListField(child=serializers.JSONField(), required=False)
    label_path = serializers.CharField(required=False)
    value_path = serializers.CharField(required=False)
    description_path = serializers.CharField(required=False)
    multiple = serializers.BooleanField(required=False)
    state = serializers.DictField(required=False)
    metadata = serializers.DictField(required=False)
    assign_to = serializers.EmailField(required=False)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    timeout = serializers.IntegerField(required=False, min_value=1)
    default_outcome = serializers.CharField(required=False)
    on_timeout = serializers.ChoiceField(choices=OnTimeout.choices, required=False)
    link_ttl = serializers.IntegerField(required=False, min_value=1)
    editable = serializers.BooleanField(required=False)
    approvers = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Several approvers (SPEC §13): emails and group:<name>; replaces assign_to.",
    )
    policy = serializers.ChoiceField(choices=Policy.choices, required=False, help_text="any (default), all, quorum.")
    required = serializers.IntegerField(  # type: ignore[assignment]
        required=False, min_value=1, help_text="quorum: how many must agree."
    )
    veto = serializers.BooleanField(required=False, help_text="approval mode: one rejection resolves (default true).")
    requested_by = serializers.EmailField(required=False, help_text="Who asked: can never approve it.")
    schema = serializers.DictField(
        required=False, help_text="form mode: a JSON Schema object of the SPEC §14 subset (mode defaults to form)."
    )
    initial = serializers.DictField(required=False, help_text="form mode: values that pre-fill the form.")


class RespondSerializer(serializers.Serializer):
    outcome = serializers.CharField(required=False, allow_blank=True)
    feedback = serializers.CharField(required=False, allow_blank=True, default="")
    choice_id = serializers.JSONField(required=False, help_text="An option id, or a list of them when multiple.")
    text = serializers.CharField(required=False, allow_blank=True, default="")
    edited_output = serializers.CharField(required=False, allow_null=True, default=None)
    data = serializers.DictField(  # type: ignore[assignment]
        required=False, default=None, allow_null=True, help_text="form mode: the form's values, typed JSON (SPEC §14)."
    )
    on_behalf_of = serializers.EmailField(
        required=False,
        default="",
        help_text="Several approvers (SPEC §13): decide as this approver (managers, the integrating app); audited.",
    )


class CallbackSerializer(RespondSerializer):
    source = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")  # type: ignore[assignment]


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ReassignSerializer(serializers.Serializer):
    email = serializers.EmailField()
    replace = serializers.EmailField(
        required=False, default="", help_text="Several approvers (SPEC §13): the approver this one replaces."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
