"""Outbound webhook services (SPEC §6): every write to webhooks, deliveries and attempts, audited.

Delivery is at-least-once with a stable `webhook-id`:
1. `stage_deliveries` writes one WebhookDelivery per subscribed webhook inside the transaction that
   changed the request (an outbox), and the channel enqueues `hitl.tasks.deliver_webhook` after commit;
2. `attempt_delivery` claims a due delivery with a compare-and-set that also leases it (pushes
   `next_attempt_at` past the attempt's time budget), signs, POSTs through `hitl.lib.http`, and
   records the attempt; on a retryable failure it sets the next attempt with exponential backoff;
3. the sweeper (every minute) enqueues whatever is due: retries, and attempts whose worker died.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import EventType
from audit.services import record_event
from hitl import config_cache
from hitl.channels import outbox
from hitl.channels.webhook_payloads import build_payload, decision_payload, encode
from hitl.lib import crypto, http
from hitl.lib.errors import InvalidInput
from hitl.lib.webhook_signing import generate_secret, signature_headers
from hitl.models import (
    DeliveryStatus,
    HITLRequest,
    Resolution,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
)

# A claimed attempt may take the HTTP time budget plus this long to record its outcome; after that
# the delivery counts as abandoned (its worker died) and the sweeper hands it to another worker.
LEASE_MARGIN_SECONDS = 5
MAX_BACKOFF_SECONDS = 24 * 3600
RETRYABLE_STATUSES = frozenset({408, 429})
GONE = 410  # Standard Webhooks: the receiver asks us to stop; the endpoint is disabled
EXCERPT_CHARS = 1000


def validate_webhook(url: str, events: list[str] | None) -> None:
    """Raise InvalidInput for a URL the egress rules would refuse or an unknown event name.

    Only the scheme and address literals are checked here; names are resolved at every attempt."""
    errors: dict[str, list[str]] = {}
    try:
        http.check_url(url, resolve_dns=False)
    except http.EgressError as exc:
        errors["url"] = [exc.detail]
    unknown = sorted(set(events or []) - set(WebhookEvent.values))
    if unknown:
        errors["events"] = [f"Unknown event(s): {', '.join(unknown)}; choose from {', '.join(WebhookEvent.values)}."]
    if errors:
        raise InvalidInput(errors)


@transaction.atomic
def create_webhook(
    deployment: Any,
    *,
    url: str,
    actor: str,
    source: str = "admin",
    name: str = "",
    events: list[str] | None = None,
    active: bool = True,
    max_retries: int | None = None,
) -> tuple[Webhook, str]:
    """Create a webhook with a fresh signing secret; return it with the secret, which is stored only
    encrypted and cannot be shown again."""
    validate_webhook(url, events)
    secret = generate_secret()
    webhook = Webhook.objects.create(
        deployment=deployment,
        name=name,
        url=url,
        active=active,
        events=list(events or []),
        max_retries=settings.HITL_WEBHOOK_MAX_RETRIES if max_retries is None else max_retries,
        secret_encrypted=crypto.encrypt(secret),
    )
    record_event(
        EventType.WEBHOOK_CHANGED,
        actor=actor,
        source=source,
        target=webhook,
        data={"action": "created", "url": url, "events": webhook.events, "active": active},
    )
    return webhook, secret


@transaction.atomic
def rotate_webhook_secret(webhook_id: Any, *, actor: str, source: str = "admin") -> str:
    """Replace a webhook's signing secret; return the new one (shown once). Attempts from now on,
    retries of older deliveries included, are signed with it."""
    webhook = Webhook.objects.select_for_update().get(pk=webhook_id)
    secret = generate_secret()
    Webhook.objects.filter(pk=webhook.pk).update(
        secret_encrypted=crypto.encrypt(secret), secret_rotated_at=timezone.now(), updated_at=timezone.now()
    )
    record_event(
        EventType.WEBHOOK_CHANGED, actor=actor, source=source, target=webhook, data={"action": "secret_rotated"}
    )
    return secret


# --- staging (inside the transaction that changed the request) -------------------------------------


def stage_deliveries(request: HITLRequest, event: str) -> list[int]:
    """Write the deliveries of `event` for every active webhook that wants it; return their ids.

    Runs inside the caller's transaction: the rows commit with the change they announce, or not at all.
    """
    if event not in WebhookEvent.values or event == WebhookEvent.DECISION_RECORDED:
        return []  # decision_recorded is staged per decision (stage_decision_deliveries)
    hooks = [hook for hook in config_cache.active_webhooks(request.deployment) if hook.wants(event)]
    if not hooks:
        return []
    resolution = None
    if event != WebhookEvent.NEW_REQUEST:
        resolution = Resolution.objects.get(request_id=request.pk)
    body = encode(build_payload(request, event, resolution))
    return _stage(hooks, body, lookup={"request": request, "event": event}, extra={})


def stage_decision_deliveries(request: HITLRequest, decision: Any, decisions: list[Any]) -> list[int]:
    """`decision_recorded` (SPEC §13): one delivery per subscribed webhook for a decision that does not
    yet resolve the request, in the decision's transaction; one per decision (not per request)."""
    event = WebhookEvent.DECISION_RECORDED
    hooks = [hook for hook in config_cache.active_webhooks(request.deployment) if hook.wants(event)]
    if not hooks:
        return []
    body = encode(decision_payload(request, decision, decisions))
    return _stage(hooks, body, lookup={"decision": decision}, extra={"request": request, "event": event})


def _stage(hooks: list[Webhook], body: str, *, lookup: dict[str, Any], extra: dict[str, Any]) -> list[int]:
    """One delivery per hook (found by `lookup`: a retried task finds the existing row); the ids of the
    new ones, whose first task goes on the queue after commit (`queued_until` keeps the ticker off it)."""
    now = timezone.now()
    ids: list[int] = []
    for hook in hooks:
        delivery, created = WebhookDelivery.objects.get_or_create(
            webhook=hook,
            **lookup,
            defaults={
                **extra,
                "message_id": f"msg_{uuid.uuid4().hex}",
                "body": body,
                "retries_left": hook.max_retries,
                "next_attempt_at": now,
                "queued_until": outbox.queued_until(now),
                "created_at": now,
            },
        )
        if created:
            ids.append(delivery.pk)
    return ids


def enqueue_deliveries(delivery_ids: list[int]) -> None:
    """After commit, one task per delivery (a slow receiver never holds up another)."""
    outbox.enqueue_after_commit("hitl.tasks.deliver_webhook", delivery_ids)


# --- attempts ---------------------------------------------------------------------------------------


def backoff_seconds(retries_used: int) -> int:
    """Delay before retry number `retries_used + 1`: base, 2×base, 4×base, … (capped at a day)."""
    return int(min(settings.HITL_WEBHOOK_RETRY_BASE * (2 ** max(retries_used, 0)), MAX_BACKOFF_SECONDS))


def attempt_delivery(delivery_id: int) -> WebhookAttempt | None:
    """Make the next attempt of a due delivery; None when it is not due, taken or finished.

    Idempotent: a second task for the same delivery loses the claim and does nothing.
    """
    timeout = settings.HITL_WEBHOOK_TIMEOUT
    now = timezone.now()
    due = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .values("attempt_count", "next_attempt_at")
        .first()
    )
    if due is None:
        return None
    # attempt_count is the version: only one claimant moves it on. The lease keeps the sweeper away
    # until this attempt has had its time budget.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, attempt_count=due["attempt_count"]
    ).update(
        attempt_count=due["attempt_count"] + 1,
        next_attempt_at=now + timedelta(seconds=timeout + LEASE_MARGIN_SECONDS),
        queued_until=None,  # this task was the queued one: the next retry may be queued when it is due
    )
    if not claimed:
        return None
    # Not the request: the attempt needs only its id (the body is stored), and loading its JSON
    # fields cost more than the HTTP exchange with a fast receiver (bench/fanout.py).
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    previous = due["attempt_count"]
    # The attempt before this one never recorded an outcome: its worker died (its lease ran out). It
    # counts as a failed try, so a delivery that keeps killing workers cannot loop forever.
    abandoned = previous > 0 and not delivery.attempts.filter(number=previous).exists()
    lease_start = (due["next_attempt_at"] or now) - timedelta(seconds=timeout + LEASE_MARGIN_SECONDS)
    if abandoned and not _record_abandoned(delivery, previous, started_at=lease_start):
        return None
    if not webhook.active:
        return _record_attempt(delivery, started_at=now, url=webhook.url, error="not sent: the webhook is inactive")
    try:
        secret = webhook.signing_secret()
    except crypto.DecryptionError as exc:
        # This process lacks the key the secret was encrypted with (a rotation not yet deployed here):
        # not the receiver's fault, so it spends no retry and is tried again until a process has the key.
        return _record_attempt(delivery, started_at=now, url=webhook.url, error=f"not sent: {exc}", key_missing=True)

    # Signed per attempt: receivers reject stale timestamps, and a rotated secret applies at once.
    headers = signature_headers(secret, delivery.message_id, int(time.time()), delivery.body)
    started = time.monotonic()
    try:
        response = http.post_json(webhook.url, delivery.body, headers=headers, timeout=timeout)
    except http.EgressError as exc:
        return _record_attempt(
            delivery,
            started_at=now,
            url=webhook.url,
            duration=time.monotonic() - started,
            error=exc.detail,
            retryable=exc.retryable,
        )
    if response.status == GONE:
        _disable_gone(webhook, delivery)
    retryable = response.status in RETRYABLE_STATUSES or response.status >= 500
    return _record_attempt(
        delivery,
        started_at=now,
        url=response.url,
        duration=response.elapsed,
        status_code=response.status,
        excerpt=response.excerpt(EXCERPT_CHARS),
        error="" if response.ok else f"HTTP {response.status}",
        retryable=retryable,
    )


@transaction.atomic
def _disable_gone(webhook: Webhook, delivery: WebhookDelivery) -> None:
    """The receiver answered 410 Gone: turn the webhook off (once), say why, audit it."""
    reason = f"Disabled: the receiver answered HTTP 410 Gone to delivery {delivery.pk} ({delivery.message_id})."
    if Webhook.objects.filter(pk=webhook.pk, active=True).update(
        active=False, disabled_reason=reason, updated_at=timezone.now()
    ):
        config_cache.bump(webhook.deployment_id)  # no longer among the active ones
        record_event(
            EventType.WEBHOOK_CHANGED,
            actor="system",
            source="webhook",
            target=webhook,
            deployment_id=webhook.deployment_id,
            data={"action": "webhook.disabled", "reason": "gone", "status_code": GONE, "delivery_id": delivery.pk},
        )


def _audit_target(delivery: WebhookDelivery) -> dict[str, Any]:
    """The announced request as an audit target, without loading it."""
    return {
        "target_type": HITLRequest._meta.model_name,
        "target_id": str(delivery.request_id),
        "deployment_id": delivery.webhook.deployment_id,
    }


@transaction.atomic
def _record_attempt(
    delivery: WebhookDelivery,
    *,
    started_at: Any,
    url: str,
    duration: float = 0.0,
    status_code: int | None = None,
    excerpt: str = "",
    error: str = "",
    retryable: bool = False,
    key_missing: bool = False,
) -> WebhookAttempt:
    ok = status_code is not None and 200 <= status_code < 300
    will_retry = key_missing or (not ok and retryable and delivery.retries_left > 0)
    now = timezone.now()
    attempt = WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempt_count,
        started_at=started_at,
        duration_ms=int(duration * 1000),
        url=url[:2000],
        status_code=status_code,
        error=error[:2000],
        response_excerpt=excerpt,
        will_retry=will_retry,
    )
    # Still ours? (attempt_count moves only by a claim: if it moved, a later attempt took over.)
    ours = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempt_count=delivery.attempt_count
    )
    audit = {
        "webhook_id": delivery.webhook_id,
        "delivery_id": delivery.pk,
        "message_id": delivery.message_id,
        "event": delivery.event,
        "attempt": attempt.number,
        "status_code": status_code,
    }
    if ok:
        if ours.update(
            status=DeliveryStatus.DELIVERED,
            delivered_at=now,
            next_attempt_at=None,
            last_status_code=status_code,
            last_error="",
        ):
            record_event(
                EventType.WEBHOOK_DELIVERED, actor="system", source="webhook", data=audit, **_audit_target(delivery)
            )
    elif key_missing:
        ours.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(0)), last_error=error[:2000])
    elif will_retry:
        used = max(delivery.webhook.max_retries - delivery.retries_left, 0)
        delay = backoff_seconds(used)
        # Queued when it is due by the worker's ticker (`sweep.tick`, every few seconds), or by the
        # minute sweep under a plain qcluster: no schedule row, no task holding a worker while it waits.
        ours.update(
            retries_left=F("retries_left") - 1,
            next_attempt_at=now + timedelta(seconds=delay),
            last_status_code=status_code,
            last_error=error[:2000],
        )
    elif ours.update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_status_code=status_code, last_error=error[:2000]
    ):
        record_event(
            EventType.WEBHOOK_FAILED,
            actor="system",
            source="webhook",
            **_audit_target(delivery),
            data={**audit, "error": error[:500]},
        )
    return attempt


@transaction.atomic
def _record_abandoned(delivery: WebhookDelivery, number: int, *, started_at: Any) -> bool:
    """Log attempt `number` as abandoned; spend a retry on it. False (and the delivery failed) when
    none is left."""
    error = "no outcome: the worker stopped during this attempt (the receiver may have received it)"
    will_retry = delivery.retries_left > 0
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started_at,
        url=delivery.webhook.url[:2000],
        error=error,
        will_retry=will_retry,
    )
    ours = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempt_count=delivery.attempt_count
    )
    if will_retry:
        ours.update(retries_left=F("retries_left") - 1, last_error=error)
        delivery.retries_left -= 1
        return True
    if ours.update(status=DeliveryStatus.FAILED, next_attempt_at=None, last_status_code=None, last_error=error):
        record_event(
            EventType.WEBHOOK_FAILED,
            actor="system",
            source="webhook",
            **_audit_target(delivery),
            data={
                "webhook_id": delivery.webhook_id,
                "delivery_id": delivery.pk,
                "message_id": delivery.message_id,
                "event": delivery.event,
                "attempt": number,
                "status_code": None,
                "error": error,
            },
        )
    return False


@transaction.atomic
def redeliver(delivery_id: int, *, actor: str, source: str = "admin") -> bool:
    """Send a finished (delivered or failed) delivery again, same webhook-id and body, with a fresh
    retry budget. False when it is still pending (already on its way)."""
    delivery = WebhookDelivery.objects.select_related("webhook", "request").get(pk=delivery_id)
    updated = (
        WebhookDelivery.objects.filter(pk=delivery.pk)
        .exclude(status=DeliveryStatus.PENDING)
        .update(
            status=DeliveryStatus.PENDING, retries_left=delivery.webhook.max_retries, next_attempt_at=timezone.now()
        )
    )
    if not updated:
        return False
    record_event(
        EventType.WEBHOOK_REDELIVERY,
        actor=actor,
        source=source,
        target=delivery.request,
        data={"webhook_id": delivery.webhook_id, "delivery_id": delivery.pk, "message_id": delivery.message_id},
    )
    enqueue_deliveries([delivery.pk])
    return True


def due_deliveries(now: Any, limit: int) -> list[int]:
    """Pending deliveries due for a try that no queued task waits for, marked queued (`outbox.mark_due`)."""
    return outbox.mark_due(WebhookDelivery, now, limit)
