"""The append-only, keyed hash-chained audit log (SPEC §10, §18).

Events copy actor and target as strings, never foreign keys, so deleting a deployment or a user can
never cascade into the log. An event is inserted *unsealed* (`seq`, `prev_hash`, `hash` empty), with no
lock: appends from any number of processes proceed in parallel. The sealer (`audit.services.seal_events`)
then gives events, in id order, their place in the one chain (`seq` 1, 2, 3 …) and their keyed hash
(HMAC with HITL_AUDIT_KEY over every column, `seq` and the previous event's hash). The database refuses
UPDATE except that one sealing of an unsealed event (its content unchanged), DELETE, TRUNCATE and
(SQLite) INSERT OR REPLACE: triggers, see `audit.lib.triggers`.

Events written before keyed sealing (migration 0004) carry an unkeyed SHA-256 chain and no `seq`:
`manage.py audit_seal_legacy` verifies that chain, then seals them first.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

GENESIS_HASH = "0" * 64


class EventType(models.TextChoices):
    REQUEST_CREATED = "request.created", "Request created"
    REQUEST_ASSIGNED = "request.assigned", "Request assigned"
    REQUEST_REASSIGNED = "request.reassigned", "Request reassigned"
    REQUEST_CANCELLED = "request.cancelled", "Request cancelled"
    RESPONSE_SUBMITTED = "response.submitted", "Response submitted"
    RESPONSE_REFUSED = "response.refused", "Response refused"
    DECISION_RECORDED = "decision.recorded", "Decision recorded (one of several approvers)"
    AUTO_RESPONDED = "request.auto_responded", "Auto-response"
    TIMED_OUT = "request.timed_out", "Request timed out"
    REQUEST_OVERDUE = "request.overdue", "Request overdue (SLA passed)"
    NOTIFICATION_SENT = "notification.sent", "Notification sent"
    NOTIFICATION_FAILED = "notification.failed", "Notification failed"
    EMAIL_IGNORED = "email.ignored", "Inbound email ignored"
    WEBHOOK_DELIVERED = "webhook.delivered", "Webhook delivered"
    WEBHOOK_FAILED = "webhook.failed", "Webhook failed"
    WEBHOOK_REDELIVERY = "webhook.redelivery", "Webhook redelivery requested"
    FLOW_RESUMED = "flow.resumed", "Flow resumed"
    CONFIG_CHANGED = "config.changed", "Configuration changed"
    RULE_CHANGED = "rule.changed", "Routing rule changed"
    WEBHOOK_CHANGED = "webhook.changed", "Webhook changed"
    PERMISSION_CHANGED = "permission.changed", "Permission changed"
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    AUDIT_EXPORTED = "audit.exported", "Audit exported"
    AUDIT_RESEALED = "audit.resealed", "Audit log sealed into the keyed chain"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder, ensure_ascii=False)


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def restrict(self, principal: Any) -> AuditEventQuerySet:
        """The events `principal` may read (see accounts.lib.access.audit_scope)."""
        # Imported here: the log must load without the apps it records (accounts imports audit).
        from accounts.lib.access import audit_scope

        return self.filter(audit_scope(principal))


class AuditEvent(models.Model):
    """One immutable event. Once sealed, `hash` (keyed) covers every column, `seq` and the previous
    event's hash."""

    created_at = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=40, choices=EventType.choices, db_index=True)
    actor = models.CharField(max_length=254, blank=True, help_text="who: user, email, api-key:<prefix>, system")
    source = models.CharField(max_length=20, blank=True, db_index=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    deployment_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    # Set once, by the sealer; empty while the event waits for it.
    seq = models.BigIntegerField(null=True, blank=True, unique=True, help_text="position in the sealed chain")
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The sealer's queue and the "unsealed for over a minute" alarm: only unsealed rows, so tiny.
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_unsealed"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event_type} {self.target_type}:{self.target_id}"

    def hashed_fields(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at.isoformat(),
            "event_type": self.event_type,
            "actor": self.actor,
            "source": self.source,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "deployment_id": self.deployment_id,
            # Round-trip through JSON so the hash is the same before saving and after loading.
            "data": json.loads(canonical_json(self.data)),
            "prev_hash": self.prev_hash,
        }

    def compute_legacy_hash(self) -> str:
        """The unkeyed SHA-256 of events written before keyed sealing (verified once, when resealed)."""
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode()).hexdigest()

    def sealed_fields(self) -> dict[str, Any]:
        return {**self.hashed_fields(), "seq": self.seq}

    def compute_hash(self, key: bytes | None = None) -> str:
        """The keyed hash (HITL_AUDIT_KEY, or `key`) of a sealed event; the same function as the
        stand-alone verifier's `audit.lib.verify_export.event_hash`."""
        from audit.lib.keys import keyed_hash

        return keyed_hash(canonical_json(self.sealed_fields()).encode(), key)
