"""Writing and verifying audit events. Every service that changes state calls `record_event` inside
its own transaction, so the event commits (or rolls back) with the change it describes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import GENESIS_HASH, AuditEvent, EventType

# Any constant works; it names the lock that serialises appends to the chain on PostgreSQL.
_CHAIN_LOCK_KEY = 0x48_49_54_4C  # "HITL"


def _lock_chain() -> None:
    """Serialise appends so every event links to the one committed before it.

    PostgreSQL: a transaction-level advisory lock, released at commit. SQLite: transactions are
    IMMEDIATE (see settings), so the writer already holds the database's write lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def _lock_chain_end() -> str:
    """Take the chain lock, then read the hash of the chain's last event (GENESIS_HASH when empty).

    Two statements on one cursor, in this order: on PostgreSQL the read must take its snapshot after
    the lock is granted, or it could miss the event its previous holder just committed. Plain SQL:
    this runs on every write, and compiling the ORM query cost more than running it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        cursor.execute(_LAST_HASH_SQL)
        row = cursor.fetchone()
    return row[0] if row else GENESIS_HASH


_LAST_HASH_SQL = f"SELECT hash FROM {AuditEvent._meta.db_table} ORDER BY id DESC LIMIT 1"  # noqa: S608 - constants


def record_event(
    event_type: EventType | str,
    *,
    actor: str = "system",
    source: str = "",
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    deployment_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain (in the caller's transaction, or its own)."""
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
        if deployment_id is None:
            deployment_id = getattr(target, "deployment_id", None)
    with transaction.atomic(savepoint=False):  # in the caller's transaction: fails with it, no savepoint
        last = _lock_chain_end()
        event = AuditEvent(
            created_at=timezone.now(),
            event_type=str(event_type),
            actor=str(actor)[:254],
            source=source,
            target_type=target_type,
            target_id=str(target_id),
            deployment_id=deployment_id,
            data=data or {},
            prev_hash=last,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event


def record_events(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events in this order, each as `record_event(**spec)` would: one lock, one read
    of the chain's end and one insert for all (the sweeper resolving a batch of timeouts)."""
    if not events:
        return []
    rows: list[AuditEvent] = []
    with transaction.atomic(savepoint=False):  # in the caller's transaction: fails with it, no savepoint
        prev = _lock_chain_end()
        for spec in events:
            target = spec.get("target")
            deployment_id = spec.get("deployment_id")
            if target is not None and deployment_id is None:
                deployment_id = getattr(target, "deployment_id", None)
            event = AuditEvent(
                created_at=timezone.now(),
                event_type=str(spec["event_type"]),
                actor=str(spec.get("actor", "system"))[:254],
                source=spec.get("source", ""),
                target_type=spec.get("target_type") or (target._meta.model_name if target is not None else ""),
                target_id=str(spec.get("target_id") or (target.pk if target is not None else "")),
                deployment_id=deployment_id,
                data=spec.get("data") or {},
                prev_hash=prev,
            )
            event.hash = event.compute_hash()
            prev = event.hash
            rows.append(event)
        AuditEvent.objects.bulk_create(rows)
    return rows


@dataclass
class ChainBreak:
    event_id: int
    reason: str


def verify_chain(batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Walk the chain in id order; return (events checked, first break or None)."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in _iterate(batch_size):
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.pk, "prev_hash does not match the previous event's hash")
        if event.compute_hash() != event.hash:
            return checked, ChainBreak(event.pk, "hash does not match the event's contents")
        expected_prev = event.hash
        checked += 1
    return checked, None


def _iterate(batch_size: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk


@dataclass(frozen=True)
class AuditExport:
    """A started export: its range (selected events with id ≤ up_to_id) and its own audit event."""

    event: AuditEvent
    up_to_id: int
    count: int
    last_hash: str


def start_audit_export(
    queryset: QuerySet[AuditEvent],
    *,
    fmt: str,
    filters: dict[str, Any],
    actor: str,
    source: str,
    deployment_id: int | None = None,
) -> AuditExport:
    """Fix an export's range and record it as an `audit.exported` event (every action is audited).

    The range is every selected event committed before the export's own event (taken under the
    chain lock), so the file is the same however long the download takes and never contains its own
    event. The event records the format, the filters, the count and the hash of the last exported
    event: the anchor a verifier can check a file's end against (`audit_verify --file ...
    --expect-last-hash`).
    """
    with transaction.atomic():
        _lock_chain()
        up_to_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        selected = queryset.filter(id__lte=up_to_id)
        count = selected.count()
        last = selected.order_by("-id").values("id", "hash").first() or {"id": None, "hash": ""}
        event = record_event(
            EventType.AUDIT_EXPORTED,
            actor=actor,
            source=source,
            target_type="auditlog",
            deployment_id=deployment_id,
            data={
                "format": fmt,
                "filters": filters,
                "count": count,
                "up_to_id": up_to_id,
                "last_id": last["id"],
                "last_hash": last["hash"],
            },
        )
    return AuditExport(event=event, up_to_id=up_to_id, count=count, last_hash=str(last["hash"] or ""))
