"""Request endpoints (SPEC §7). Thin: find the object through `restrict()`, call one service."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.lib.access import (
    Action,
    ApiKeyPrincipal,
    deployment_scope,
    may_hold_capabilities,
    on_behalf_of,
    principal_label,
)
from accounts.models import ApiKey, Deployment
from hitl import services
from hitl.api.serializers import (
    CallbackSerializer,
    CancelSerializer,
    ReassignSerializer,
    RequestCreateSerializer,
    RequestSerializer,
    RespondSerializer,
    ResultSerializer,
    result_of,
)
from hitl.idempotency import idempotent
from hitl.lib import signing
from hitl.lib.api.errors import ErrorSerializer
from hitl.lib.links import CALLBACK_PURPOSE, callback_principal
from hitl.models import HITLRequest, Source, Status
from hitl.services import throttle

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class TooManyWaits(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many concurrent long-polls for this key; wait for one to finish, or poll without wait."
    default_code = "too_many_waits"


def _principal_key(principal: Any) -> str:
    if isinstance(principal, ApiKeyPrincipal):
        return f"key:{principal.key.pk}"
    return f"user:{getattr(principal, 'pk', '')}"


def _answer(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> services.Answer:
    return services.Answer(
        outcome=data.get("outcome") or None,
        feedback=data.get("feedback") or "",
        choice_id=data.get("choice_id"),
        text=data.get("text") or "",
        edited_output=data.get("edited_output"),
        metadata=metadata or {},
        form=data.get("data") if data.get("data") is not None else {},  # form mode only
    )


class RequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RequestSerializer
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_queryset(self) -> QuerySet[HITLRequest]:
        queryset: QuerySet[HITLRequest] = HITLRequest.objects.restrict(self.request.user, "view")
        queryset = queryset.select_related("resolution")
        if self.action == "list":
            queryset = self._filter(queryset)
        return queryset.order_by("-created_at", "id")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "principal": self.request.user}

    def _shown(self, instance: HITLRequest) -> dict[str, Any]:
        return RequestSerializer(instance, context={"principal": self.request.user}).data  # type: ignore[return-value]

    def _filter(self, queryset: QuerySet[HITLRequest]) -> QuerySet[HITLRequest]:
        params = self.request.query_params
        if params.get("status"):
            statuses = [s.strip() for s in params["status"].split(",") if s.strip()]
            unknown = set(statuses) - set(Status.values)
            if unknown:
                raise exceptions.ValidationError({"status": [f"Unknown status: {', '.join(sorted(unknown))}."]})
            queryset = queryset.filter(status__in=statuses)
        for param, lookup in (("method_name", "method_name"), ("flow_id", "flow_id")):
            if params.get(param):
                queryset = queryset.filter(**{lookup: params[param]})
        if params.get("deployment"):
            value = params["deployment"]
            if not value.isdigit() or int(value) >= 2**63:
                raise exceptions.ValidationError({"deployment": ["A deployment id."]})
            queryset = queryset.filter(deployment_id=int(value))
        if params.get("assigned_to"):
            queryset = queryset.filter(assigned_to_email=params["assigned_to"].strip().lower())
        for param, lookup in (("created_after", "created_at__gte"), ("created_before", "created_at__lt")):
            if params.get(param):
                try:
                    moment = parse_datetime(params[param])
                    if moment is not None and moment.tzinfo is not None:
                        moment.astimezone(UTC)  # 9999-12-31T23:00-05:00 is past the last representable instant
                except (ValueError, OverflowError):
                    moment = None
                if moment is None:
                    raise exceptions.ValidationError({param: ["An ISO 8601 date-time, e.g. 2026-01-14T12:00:00Z."]})
                queryset = queryset.filter(**{lookup: moment})
        return queryset

    def _object_for(self, action_name: Action) -> HITLRequest:
        """404 when the principal cannot see it, 403 when it can see but not `action_name` it.

        Every action's scope lies within the view scope, so the usual case (allowed) is one query; only
        a refusal looks again, to tell 404 from 403."""
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        allowed = HITLRequest.objects.restrict(self.request.user, action_name).select_related(
            "resolution", "deployment"
        )
        try:
            request = allowed.filter(pk=lookup).first()
        except (TypeError, ValueError, DjangoValidationError):
            request = None  # not a request id: get_object() below answers 404, as for any unknown id
        if request is None:
            self.get_object()  # 404 when it cannot even be seen
            raise exceptions.PermissionDenied(f"You may view this request but not {action_name} it.")
        self.check_object_permissions(self.request, request)
        return request

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="Comma-separated statuses."),
            OpenApiParameter("method_name", str),
            OpenApiParameter("flow_id", str),
            OpenApiParameter("assigned_to", str),
            OpenApiParameter("deployment", int),
            OpenApiParameter("created_after", str, description="ISO 8601"),
            OpenApiParameter("created_before", str, description="ISO 8601"),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @idempotent
    @extend_schema(request=RequestCreateSerializer, responses={201: RequestSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        data = dict(request.data)
        deployment = self._deployment_for_create(data.pop("deployment", None))
        created = services.create_request(deployment, data, actor=principal_label(request.user), source=Source.API)
        # The saved instance as it is (no read back): every field was set in Python, nothing is filled
        # in by the database, and a pending request's result never touches its resolution.
        return Response(self._shown(created), status=status.HTTP_201_CREATED)

    def _deployment_for_create(self, deployment_id: Any) -> Deployment:
        principal = self.request.user
        if isinstance(principal, ApiKeyPrincipal):
            if deployment_id not in (None, principal.deployment_id):
                raise exceptions.NotFound("No such deployment.")
            # A key sees its own deployment (loaded with it) and manages it only with full access: what
            # `deployment_scope` says for a key, without two queries on every create.
            if principal.key.access != ApiKey.Access.FULL:
                raise exceptions.PermissionDenied("Creating requests needs full access to the deployment.")
            return principal.key.deployment
        if deployment_id is None:
            raise exceptions.ValidationError({"deployment": ["Required when signed in with a session."]})
        if not isinstance(deployment_id, int):
            raise exceptions.ValidationError({"deployment": ["Must be a deployment id."]})
        visible = Deployment.objects.filter(deployment_scope(principal, "view"))
        deployment = get_object_or_404(visible.select_related("creator"), pk=deployment_id)
        if not Deployment.objects.filter(deployment_scope(principal, "manage"), pk=deployment.pk).exists():
            raise exceptions.PermissionDenied("Creating requests needs full access to the deployment.")
        return deployment

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait", int, description=f"Long-poll up to N seconds (max {settings.HITL_MAX_WAIT_SECONDS})."
            )
        ],
        responses={200: ResultSerializer, 429: ErrorSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def result(self, request: Request, pk: str | None = None) -> Response:
        obj = self.get_object()
        try:
            wait = min(max(int(request.query_params.get("wait", 0)), 0), settings.HITL_MAX_WAIT_SECONDS)
        except ValueError:
            raise exceptions.ValidationError({"wait": ["A whole number of seconds."]}) from None
        if wait and obj.is_pending:
            obj = self._wait(obj, wait)
        return Response({"status": obj.status, **result_of(obj)})

    def _wait(self, obj: HITLRequest, wait: int) -> HITLRequest:
        """Long-poll: a few concurrent waits per principal (429 beyond), and no database connection held
        while sleeping (it is closed before every sleep; the cheap check opens one again)."""
        slot = f"long-poll:{_principal_key(self.request.user)}"
        if not throttle.acquire(slot, limit=settings.HITL_MAX_WAITS_PER_KEY, ttl_seconds=2 * wait + 60):
            raise TooManyWaits()
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not connection.in_atomic_block:  # (tests run inside a transaction: keep it)
                    connection.close()
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
                if HITLRequest.objects.filter(pk=obj.pk).exclude(status=Status.PENDING).exists():
                    return HITLRequest.objects.select_related("resolution").get(pk=obj.pk)
            return obj
        finally:
            throttle.release(slot)
            if not connection.in_atomic_block:
                connection.close()

    @idempotent
    @extend_schema(request=RespondSerializer, responses={200: ResultSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def respond(self, request: Request, pk: str | None = None) -> Response:
        obj = self._object_for("respond")
        body = RespondSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label = principal_label(request.user)
        if obj.has_pool:
            return Response(self._decide(obj, body.validated_data, label))
        resolution = services.respond_to_request(
            obj,
            _answer(body.validated_data),
            responder=label,
            source=Source.API,
            on_behalf_of=on_behalf_of(request.user, obj.assigned_to_email),
        )
        return Response(resolution.result)

    def _decide(self, obj: HITLRequest, data: dict[str, Any], label: str) -> dict[str, Any]:
        """One approver's decision on a pooled request (SPEC §13): a signed-in approver decides as
        themselves; `on_behalf_of` names another approver, for managers of the deployment and full
        keys (the integrating app) only. The result as it stands is returned (`decisions` so far)."""
        principal = self.request.user
        is_key = isinstance(principal, ApiKeyPrincipal)
        behalf = (data.get("on_behalf_of") or "").strip().lower()
        if behalf == label:
            behalf = ""
        if behalf and not is_key and not may_hold_capabilities(principal, obj.deployment_id):
            services.refuse_decision(obj.pk, actor=label, source=Source.API, reason="not_a_manager", approver=behalf)
        resolution = services.respond_to_request(
            obj.pk, _answer(data), responder=label, source=Source.API, on_behalf_of=behalf, app=is_key
        )
        return dict(resolution.result)

    @idempotent
    @extend_schema(request=CancelSerializer, responses={200: RequestSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        obj = self._object_for("manage")
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.cancel_request(
            obj.pk, actor=principal_label(request.user), source=Source.API, reason=body.validated_data["reason"]
        )
        return Response(self._shown(self.get_queryset().get(pk=obj.pk)))

    @extend_schema(request=ReassignSerializer, responses={200: RequestSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str | None = None) -> Response:
        obj = self._object_for("manage")
        body = ReassignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.reassign_request(
            obj.pk,
            email=body.validated_data["email"],
            note=body.validated_data["note"],
            actor=principal_label(request.user),
            source=Source.API,
            replace=body.validated_data["replace"],
        )
        return Response(self._shown(self.get_queryset().get(pk=obj.pk)))


class CallbackView(APIView):
    """`POST {callback_url}`: the signature in the URL is the authority (SPEC §6)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=CallbackSerializer, responses={200: ResultSerializer, **ERRORS})
    def post(self, request: Request, request_id: str, token: str) -> Response:
        try:
            signing.verify(token, CALLBACK_PURPOSE, str(request_id))
        except signing.TokenExpired:
            raise exceptions.PermissionDenied("This callback URL has expired.", code="expired_signature") from None
        except signing.TokenInvalid:
            raise exceptions.PermissionDenied("Invalid callback signature.", code="bad_signature") from None
        body = CallbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        target = HITLRequest.objects.select_related("deployment").filter(pk=request_id).first()
        if target is None:
            raise exceptions.NotFound("No such request.")
        # The URL is the integrating app's credential: the answer is the app's, whatever name the caller
        # declares (kept as metadata, never as the responder).
        metadata = {"callback_source": body.validated_data["source"]} if body.validated_data["source"] else {}
        responder = callback_principal(target.deployment)
        # Several approvers (SPEC §13): the app answers an `any` request as itself, or names the approver
        # it speaks for (on_behalf_of, audited); refused otherwise (approver_required).
        behalf = (body.validated_data.get("on_behalf_of") or "").strip().lower() if target.has_pool else ""
        resolution = services.respond_to_request(
            target,
            _answer(body.validated_data, metadata),
            responder=responder,
            source=Source.API,
            on_behalf_of=behalf,
            app=target.has_pool,
        )
        return Response(resolution.result)
