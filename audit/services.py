"""Writing and verifying audit events. Every service that changes state calls `record_event` inside
its own transaction, so the event commits (or rolls back) with the change it describes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
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
    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            event_type=str(event_type),
            actor=str(actor)[:254],
            source=source,
            target_type=target_type,
            target_id=str(target_id),
            deployment_id=deployment_id,
            data=data or {},
            prev_hash=last or GENESIS_HASH,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event


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
