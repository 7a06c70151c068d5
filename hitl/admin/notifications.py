"""The notification outbox in the admin: every notification each channel owes, its tries and its last
error; a failed one can be tried again (change permission, audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl.channels.notification_outbox import enqueue_after_commit
from hitl.models import DeliveryStatus, NotificationDelivery


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event", "channel_name", "request_id", "status", "failures", "next_attempt_at")
    list_filter = ("status", "event", "channel")
    search_fields = ("=request__id",)
    date_hierarchy = "created_at"
    actions = ["try_again"]

    @admin.display(description="Channel", ordering="channel")
    def channel_name(self, obj: NotificationDelivery) -> str:
        return obj.channel.rsplit(".", 1)[-1]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in NotificationDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Try the selected failed notifications again", permissions=["change"])
    def try_again(self, request: HttpRequest, queryset: QuerySet[NotificationDelivery]) -> None:
        with transaction.atomic():
            ids = list(queryset.filter(status=DeliveryStatus.FAILED).values_list("pk", flat=True))
            # A failed row has no task left (its last try recorded the failure): a fresh budget of tries.
            NotificationDelivery.objects.filter(pk__in=ids, status=DeliveryStatus.FAILED).update(
                status=DeliveryStatus.PENDING, attempt_count=0, failures=0, next_attempt_at=timezone.now()
            )
            for row in NotificationDelivery.objects.filter(pk__in=ids).select_related("request"):
                record_event(
                    EventType.NOTIFICATION_SENT,
                    actor=request.user.get_username(),
                    source="admin",
                    target=row.request,
                    data={
                        "action": "retry_requested",
                        "channel": row.channel,
                        "event": row.event,
                        "delivery_id": row.pk,
                    },
                )
            enqueue_after_commit(ids)
        skipped = queryset.count() - len(ids)
        self.message_user(request, f"{len(ids)} notification(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: only failed notifications are tried again.", messages.WARNING
            )
