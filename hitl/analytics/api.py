"""`GET /api/v1/analytics/`: the §9 figures, with the analytics page's filters."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hitl.analytics.figures import Analytics
from hitl.analytics.filters import AnalyticsFilterForm, resolve_filters
from hitl.lib.api.errors import ErrorSerializer

# --- response shape (documentation: the view returns the report dict as computed) ---------------


class ResponseTimesSerializer(serializers.Serializer):
    answered = serializers.IntegerField(help_text="Human answers resolved in the period.")
    response_time_mean = serializers.FloatField(allow_null=True, help_text="Seconds.")
    response_time_median = serializers.FloatField(allow_null=True, help_text="Seconds (percentile_cont 0.5).")
    response_time_p90 = serializers.FloatField(allow_null=True, help_text="Seconds (percentile_cont 0.9).")


class ResolvedSerializer(ResponseTimesSerializer):
    resolved = serializers.IntegerField(help_text="Left pending in the period (by resolved_at).")
    responded = serializers.IntegerField()
    auto_responded = serializers.IntegerField()
    timed_out = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    sla_met = serializers.IntegerField(help_text="Answered by a human by the SLA due time.")
    sla_total = serializers.IntegerField(help_text="With an SLA and answered, auto-responded or timed out.")
    sla_share = serializers.FloatField(allow_null=True, help_text="sla_met / sla_total.")
    auto_response_share = serializers.FloatField(
        allow_null=True, help_text="auto_responded / (responded + auto_responded + timed_out)."
    )


class BacklogSerializer(ResolvedSerializer):
    created = serializers.IntegerField(help_text="Created in the period.")
    pending = serializers.IntegerField(help_text="Pending now (ignores the period).")
    overdue = serializers.IntegerField(help_text="Pending now and past the SLA due time.")
    oldest_pending_at = serializers.DateTimeField(allow_null=True)


class SummarySerializer(BacklogSerializer):
    oldest_pending_age_seconds = serializers.IntegerField(allow_null=True)


class BreakdownRowSerializer(BacklogSerializer):
    key = serializers.JSONField(help_text="Deployment id, flow name, method name or assignee email.")
    label = serializers.CharField()  # type: ignore[assignment]


class PeriodRowSerializer(ResolvedSerializer):
    period = serializers.DateField(help_text="First day of the bucket (UTC day or ISO week).")
    created = serializers.IntegerField()


class DecisionSerializer(serializers.Serializer):
    outcome = serializers.CharField(help_text='"" for answers without an outcome.')
    human = serializers.IntegerField()
    auto = serializers.IntegerField()
    total = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class ChannelSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="email, dashboard, api, telegram, slack or auto.")  # type: ignore[assignment]
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class PeriodSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField(help_text="Inclusive.")
    bucket = serializers.ChoiceField(choices=["day", "week"])
    timezone = serializers.CharField()


class FormFieldRowSerializer(serializers.Serializer):
    field = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    value = serializers.CharField(allow_blank=True, help_text='yes/no for booleans; "" when left empty.')
    count = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class AnalyticsReportSerializer(serializers.Serializer):
    period = PeriodSerializer()
    filters = serializers.DictField(help_text="The filters applied, as query parameters.")
    generated_at = serializers.DateTimeField()
    summary = SummarySerializer()
    by_period = PeriodRowSerializer(many=True, help_text="Volume (created vs resolved) per day or week.")
    decisions = DecisionSerializer(many=True)
    channels = ChannelSerializer(many=True)
    by_deployment = BreakdownRowSerializer(many=True)
    by_flow = BreakdownRowSerializer(many=True)
    by_method = BreakdownRowSerializer(many=True)
    by_reviewer = BreakdownRowSerializer(many=True, help_text="Per assignee.")
    form_fields = FormFieldRowSerializer(
        many=True, help_text="Typed forms (SPEC §14): answers per enum and yes/no field and value."
    )


PARAMETERS = [
    OpenApiParameter(
        "deployment",
        OpenApiTypes.INT,
        many=True,
        explode=True,
        description="Deployment ids (repeat or comma-separate).",
    ),
    OpenApiParameter("flow", str, description="Flow name, exact."),
    OpenApiParameter("method", str, description="Method name, exact."),
    OpenApiParameter("reviewer", str, description="Assignee email, case-insensitive."),
    OpenApiParameter("since", OpenApiTypes.DATE, description="First day (UTC)."),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Last day, inclusive (UTC); default today."),
    OpenApiParameter("days", int, description="Without since: the last N days (default 30, at most 731)."),
    OpenApiParameter("bucket", str, enum=["day", "week"], description="Default: day up to 62 days, else week."),
]


class AnalyticsView(APIView):
    """Figures per deployment, flow, method, reviewer and period (see README → Analytics)."""

    @extend_schema(
        operation_id="analytics",
        parameters=PARAMETERS,
        responses={200: AnalyticsReportSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        form = AnalyticsFilterForm(request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError(
                {field: [str(m) for m in messages] for field, messages in form.errors.items()}
            )
        filters = resolve_filters(form.cleaned_data)
        return Response(Analytics.of(request.user, filters).report())
