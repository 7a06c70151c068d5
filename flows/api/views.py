"""Flow endpoints (SPEC §7): kickoff, execution status, crew-style resume."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.lib.access import deployment_scope, may_hold_capabilities, principal_label
from accounts.models import Deployment
from flows.engine import crew, runs
from flows.models import FlowRun
from hitl.idempotency import idempotent
from hitl.lib.api.errors import ErrorSerializer
from hitl.lib.links import callback_url

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}
WEBHOOK_KEYS = ("taskWebhookUrl", "stepWebhookUrl", "crewWebhookUrl")


class WebhookUrlsSerializer(serializers.Serializer):
    """The seed's kickoff/resume webhook URLs (its names, hence camelCase)."""

    taskWebhookUrl = serializers.URLField(required=False, allow_blank=True)  # noqa: N815
    stepWebhookUrl = serializers.URLField(required=False, allow_blank=True)  # noqa: N815
    crewWebhookUrl = serializers.URLField(required=False, allow_blank=True)  # noqa: N815


class KickoffSerializer(WebhookUrlsSerializer):
    inputs = serializers.DictField(required=False, default=dict)
    flow = serializers.CharField(required=False, allow_blank=True, default="")
    sync = serializers.BooleanField(required=False, default=False)


class KickoffResponseSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    status = serializers.CharField()
    state = serializers.DictField(required=False)
    webhook_secret = serializers.CharField(required=False, help_text="Signs this run's webhooks (whsec_…).")


class ResumeSerializer(WebhookUrlsSerializer):
    execution_id = serializers.UUIDField()
    task_id = serializers.CharField()
    human_feedback = serializers.CharField(allow_blank=True, default="")
    is_approve = serializers.BooleanField()


class StepSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    method_name = serializers.CharField()
    trigger = serializers.CharField()
    status = serializers.CharField()
    input = serializers.JSONField()
    output = serializers.JSONField()
    result = serializers.JSONField()
    error = serializers.CharField()
    request_id = serializers.UUIDField(allow_null=True)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)


class ExecutionSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField(source="id")
    flow = serializers.CharField(source="flow_name")
    deployment = serializers.IntegerField(source="deployment_id")
    status = serializers.CharField()
    outcome = serializers.CharField()
    error = serializers.CharField()
    inputs = serializers.DictField()
    state = serializers.DictField()
    pending_task = serializers.CharField()
    steps = serializers.SerializerMethodField()
    pending_requests = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses=StepSerializer(many=True))
    def get_steps(self, run: FlowRun) -> list[dict[str, Any]]:
        return StepSerializer(run.steps.all(), many=True).data  # type: ignore[return-value]

    def get_pending_requests(self, run: FlowRun) -> list[dict[str, Any]]:
        request = run.pending_request
        if request is None or not request.is_pending:
            return []
        shown: dict[str, Any] = {
            "id": str(request.pk),
            "method_name": request.method_name,
            "message": request.message,
            "assigned_to_email": request.assigned_to_email,
            "status": request.status,
        }
        # Only principals who may act receive the capability (SPEC §10): never a read-only key.
        if may_hold_capabilities(self.context.get("principal"), request.deployment_id):
            shown["callback_url"] = callback_url(request)
        return [shown]


def _deployment(request: Request, deployment_id: int) -> Deployment:
    visible = Deployment.objects.filter(deployment_scope(request.user, "view"))
    deployment = get_object_or_404(visible, pk=deployment_id)
    if not Deployment.objects.filter(deployment_scope(request.user, "manage"), pk=deployment.pk).exists():
        raise exceptions.PermissionDenied("Running flows needs full access to the deployment.")
    return deployment


class KickoffView(APIView):
    @idempotent
    @extend_schema(
        request=KickoffSerializer, responses={202: KickoffResponseSerializer, 200: KickoffResponseSerializer, **ERRORS}
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = _deployment(request, deployment_id)
        body = KickoffSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = runs.kickoff(
            deployment,
            flow=data["flow"] or None,
            inputs=data["inputs"],
            webhooks={key: data.get(key, "") for key in WEBHOOK_KEYS},
            sync=data["sync"],
            actor=principal_label(request.user),
        )
        secret = getattr(run, "plain_webhook_secret", "")
        run.refresh_from_db()
        reply: dict[str, Any] = {"execution_id": str(run.pk), "status": run.status}
        if secret:
            reply["webhook_secret"] = secret  # verifies our signatures on this run's webhooks; shown once
        if data["sync"]:
            return Response({**reply, "state": run.state})
        return Response(reply, status=202)


class ResumeView(APIView):
    @idempotent
    @extend_schema(request=ResumeSerializer, responses={200: KickoffResponseSerializer, **ERRORS})
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = _deployment(request, deployment_id)
        body = ResumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = get_object_or_404(FlowRun, pk=data["execution_id"], deployment=deployment)
        run = crew.resume_task(
            run,
            task_id=data["task_id"],
            feedback=data["human_feedback"],
            is_approve=data["is_approve"],
            webhooks={key: data.get(key, "") for key in WEBHOOK_KEYS},
            actor=principal_label(request.user),
        )
        return Response({"execution_id": str(run.pk), "status": run.status})


class ExecutionView(APIView):
    @extend_schema(responses={200: ExecutionSerializer, **ERRORS})
    def get(self, request: Request, execution_id: str) -> Response:
        visible = FlowRun.objects.filter(
            deployment__in=Deployment.objects.filter(deployment_scope(request.user, "view"))
        )
        run = get_object_or_404(visible.select_related("pending_request"), pk=execution_id)
        return Response(ExecutionSerializer(run, context={"principal": request.user}).data)
