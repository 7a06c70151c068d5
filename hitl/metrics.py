"""Prometheus metrics (SPEC §17), computed from the database and the broker at scrape time.

Nothing is counted in process memory: any web process answers a scrape with the same numbers, however
many web and worker processes there are, and a restart resets nothing. Each family is one aggregate
query (GROUP BY / conditional COUNT), so a scrape costs the same few queries at any size."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from audit.models import AuditEvent, EventType
from hitl.models import HITLRequest, Resolution, Status

# Human response times span seconds to days.
RESPONSE_TIME_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)


class HitlCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self._pending()
        created = HITLRequest.objects.count()
        c = CounterMetricFamily("hitl_requests_created", "Requests created.")
        c.add_metric([], created)
        yield c
        yield from self._resolved()
        yield self._response_time()
        yield from self._audit_counters()
        yield from self._queue()

    def _pending(self) -> Iterator[Metric]:
        now = timezone.now()
        rows = (
            HITLRequest.objects.filter(status=Status.PENDING)
            .order_by()
            .values("deployment_id")
            .annotate(pending=Count("pk"), overdue=Count("pk", filter=Q(overdue=True)), oldest=Min("created_at"))
        )
        pending = GaugeMetricFamily("hitl_requests_pending", "Pending requests.", labels=["deployment"])
        overdue = GaugeMetricFamily("hitl_requests_overdue", "Pending requests past their SLA.", labels=["deployment"])
        oldest = GaugeMetricFamily(
            "hitl_oldest_pending_age_seconds", "Age of the oldest pending request.", labels=["deployment"]
        )
        for row in rows:
            label = [str(row["deployment_id"])]
            pending.add_metric(label, row["pending"])
            overdue.add_metric(label, row["overdue"])
            oldest.add_metric(label, max(0.0, (now - row["oldest"]).total_seconds()))
        yield pending
        yield overdue
        yield oldest

    def _resolved(self) -> Iterator[Metric]:
        family = CounterMetricFamily("hitl_requests_resolved", "Requests resolved.", labels=["status", "source"])
        for row in Resolution.objects.order_by().values("status", "source").annotate(n=Count("pk")):
            family.add_metric([row["status"], row["source"]], row["n"])
        yield family

    def _response_time(self) -> Metric:
        """Created → answered by a person (responded), as one query of cumulative bucket counts."""
        took = ExpressionWrapper(F("created_at") - F("request__created_at"), output_field=DurationField())
        aggregates = {f"le_{b}": Count("pk", filter=Q(took__lte=timedelta(seconds=b))) for b in RESPONSE_TIME_BUCKETS}
        row = (
            Resolution.objects.filter(status=Status.RESPONDED)
            .annotate(took=took)
            .aggregate(n=Count("pk"), total=Sum("took"), **aggregates)
        )
        total = row["total"]
        seconds = total.total_seconds() if isinstance(total, timedelta) else float(total or 0) / 1e6
        buckets = [(str(float(b)), row[f"le_{b}"]) for b in RESPONSE_TIME_BUCKETS] + [("+Inf", row["n"])]
        return HistogramMetricFamily(
            "hitl_response_time_seconds", "Time from creation to a person's answer.", buckets=buckets, sum_value=seconds
        )

    def _audit_counters(self) -> Iterator[Metric]:
        # The audit log is append-only and shared by every process: the right source for counters.
        rows = (
            AuditEvent.objects.filter(
                event_type__in=[EventType.NOTIFICATION_FAILED, EventType.WEBHOOK_DELIVERED, EventType.WEBHOOK_FAILED]
            )
            .order_by()
            .values("event_type", "source")
            .annotate(n=Count("pk"))
        )
        failures = CounterMetricFamily(
            "hitl_notification_failures", "Failed notification attempts.", labels=["channel"]
        )
        deliveries = CounterMetricFamily("hitl_webhook_deliveries", "Webhook delivery attempts.", labels=["result"])
        webhook = {"delivered": 0, "failed": 0}
        for row in rows:
            if row["event_type"] == EventType.NOTIFICATION_FAILED:
                failures.add_metric([row["source"] or "unknown"], row["n"])
            elif row["event_type"] == EventType.WEBHOOK_DELIVERED:
                webhook["delivered"] += row["n"]
            else:
                webhook["failed"] += row["n"]
        for result, n in webhook.items():
            deliveries.add_metric([result], n)
        yield failures
        yield deliveries

    def _queue(self) -> Iterator[Metric]:
        from django_q.brokers import get_broker
        from django_q.models import Failure

        depth = GaugeMetricFamily("hitl_queue_depth", "Tasks waiting in the broker.")
        depth.add_metric([], get_broker().queue_size() or 0)
        yield depth
        failed = CounterMetricFamily("hitl_tasks_failed", "Background tasks that failed (django-q2 failures).")
        failed.add_metric([], Failure.objects.count())
        yield failed
        yield from self._outboxes()

    def _outboxes(self) -> Iterator[Metric]:
        """Rows still owed by each outbox, and those due for over 5 minutes that no worker has taken
        (no worker, or none with the ticker): one query each, on the pending rows only."""
        from datetime import timedelta

        from django.utils import timezone

        from hitl.models import DeliveryStatus, NotificationDelivery, WebhookDelivery

        pending = GaugeMetricFamily("hitl_outbox_pending", "Deliveries still owed.", labels=["outbox"])
        stuck = GaugeMetricFamily(
            "hitl_outbox_overdue", "Deliveries due for over 5 minutes and not taken.", labels=["outbox"]
        )
        cutoff = timezone.now() - timedelta(minutes=5)
        for name, model in (("notification", NotificationDelivery), ("webhook", WebhookDelivery)):
            rows = model.objects.filter(status=DeliveryStatus.PENDING)  # type: ignore[attr-defined]
            counts = rows.aggregate(owed=Count("pk"), overdue=Count("pk", filter=Q(next_attempt_at__lt=cutoff)))
            pending.add_metric([name], counts["owed"])
            stuck.add_metric([name], counts["overdue"])
        yield pending
        yield stuck
