"""Writing, sealing and verifying audit events (SPEC §10, §18).

Every service that changes state calls `record_event` inside its own transaction, so the event commits
(or rolls back) with the change it describes. Appending takes no lock and reads nothing: the event is
inserted *unsealed*. One sealer at a time (`seal_events`: the worker's sealer thread every second, the
`audit-seal` schedule every minute, and every verification and export before it reads) gives the
committed unsealed events, in id order, their `seq` and keyed hash, a batch per short transaction.
A sealer killed mid-batch rolls its batch back; the next one seals the same events again, so nothing
is lost or sealed twice (`seq` is unique, and the database refuses a second sealing of an event).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.lib import verify_export as cp
from audit.lib.keys import hmac_keys, sign, trusted_public_keys
from audit.models import GENESIS_HASH, AuditEvent, EventType, canonical_json

logger = logging.getLogger("audit")

# Any constant works; it names the lock that lets one sealer at a time extend the chain (PostgreSQL).
_SEAL_LOCK_KEY = 0x48_49_54_4C  # "HITL"
TABLE = AuditEvent._meta.db_table
SEAL_BATCH = 2000


def _event(spec: dict[str, Any]) -> AuditEvent:
    target = spec.get("target")
    deployment_id = spec.get("deployment_id")
    if target is not None and deployment_id is None:
        deployment_id = getattr(target, "deployment_id", None)
    return AuditEvent(
        created_at=timezone.now(),
        event_type=str(spec["event_type"]),
        actor=str(spec.get("actor", "system"))[:254],
        source=spec.get("source", ""),
        target_type=spec.get("target_type") or (target._meta.model_name if target is not None else ""),
        target_id=str(spec.get("target_id") or (target.pk if target is not None else "")),
        deployment_id=deployment_id,
        data=spec.get("data") or {},
    )


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
    """Append one event (in the caller's transaction, or its own): one INSERT, no lock. The sealer
    chains it shortly after it commits."""
    event = _event(
        {
            "event_type": event_type,
            "actor": actor,
            "source": source,
            "target": target,
            "target_type": target_type,
            "target_id": target_id,
            "deployment_id": deployment_id,
            "data": data,
        }
    )
    event.save(force_insert=True)
    return event


def record_events(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events in this order, each as `record_event(**spec)` would, in one INSERT."""
    if not events:
        return []
    return AuditEvent.objects.bulk_create([_event(spec) for spec in events])


class LegacyLogError(Exception):
    """Events from before keyed sealing are still unsealed: `manage.py audit_seal_legacy` first."""


def _chain_head() -> tuple[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seq, hash FROM {TABLE} WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")  # noqa: S608
        row = cursor.fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def _take_seal_lock() -> bool:
    """PostgreSQL: the one sealer's lock, released at commit; taken without waiting (another sealer is
    at work, it will seal these events too). SQLite: the IMMEDIATE transaction holds the write lock."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_SEAL_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _write_seals(rows: list[AuditEvent]) -> None:
    params = [(e.pk, e.seq, e.prev_hash, e.hash) for e in rows]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ",".join(["(%s::bigint,%s::bigint,%s,%s)"] * len(params))
            cursor.execute(
                f"UPDATE {TABLE} AS t SET seq = v.seq, prev_hash = v.prev, hash = v.hash "  # noqa: S608
                f"FROM (VALUES {values}) AS v(id, seq, prev, hash) WHERE t.id = v.id AND t.seq IS NULL",
                [value for row in params for value in row],
            )
            updated = cursor.rowcount
        else:
            cursor.executemany(
                f"UPDATE {TABLE} SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s AND seq IS NULL",  # noqa: S608
                [(seq, prev, digest, pk) for pk, seq, prev, digest in params],
            )
            updated = len(params)
    if updated != len(params):
        raise RuntimeError(f"sealed {updated} of {len(params)} audit events: another sealer ran")


def seal_batch(batch_size: int = SEAL_BATCH) -> int:
    """Seal up to `batch_size` committed unsealed events in one transaction; how many were sealed
    (0 when there were none, or another sealer holds the lock)."""
    key = hmac_keys()[0]
    with transaction.atomic():
        if not _take_seal_lock():
            return 0
        rows = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:batch_size])
        if not rows:
            return 0
        if rows[0].hash is not None:
            raise LegacyLogError(
                "the audit log holds events written before keyed sealing: run `manage.py audit_seal_legacy`"
            )
        seq, prev = _chain_head()
        for event in rows:
            seq += 1
            event.seq, event.prev_hash = seq, prev
            event.hash = event.compute_hash(key)
            prev = event.hash
        _write_seals(rows)
    return len(rows)


def seal_events(batch_size: int = SEAL_BATCH, max_batches: int | None = None) -> int:
    """Seal every committed unsealed event, batch by batch; how many were sealed."""
    total = batches = 0
    while max_batches is None or batches < max_batches:
        done = seal_batch(batch_size)
        total += done
        batches += 1
        if done < batch_size:
            break
    return total


def unsealed_alarm(now: datetime | None = None) -> tuple[int, datetime | None]:
    """(unsealed events older than HITL_AUDIT_UNSEALED_ALARM seconds, the oldest one's time)."""
    limit = (now or timezone.now()) - timedelta(seconds=settings.HITL_AUDIT_UNSEALED_ALARM)
    stale = AuditEvent.objects.filter(seq__isnull=True, created_at__lt=limit)
    oldest = stale.order_by("id").values_list("created_at", flat=True).first()
    return (stale.count(), oldest) if oldest is not None else (0, None)


def seal_legacy(batch_size: int = SEAL_BATCH) -> tuple[int, str]:
    """Verify the unkeyed chain of events written before keyed sealing, then seal them, in id order,
    as the chain's first events; refuse (ChainBreak raised as LegacyChainBroken) if it does not
    verify. Returns (events resealed, the old chain's last hash); records `audit.resealed`."""
    key = hmac_keys()[0]
    with transaction.atomic():
        if not _take_seal_lock():
            raise LegacyChainBroken(0, "another sealer holds the lock: try again")
        legacy = AuditEvent.objects.filter(seq__isnull=True, hash__isnull=False).order_by("id")
        if not legacy.exists():
            return 0, ""  # nothing from before keyed sealing (a new log, or already resealed)
        if AuditEvent.objects.filter(seq__isnull=False).exists():
            raise LegacyChainBroken(0, "sealed events exist before the old ones were resealed: an inconsistent log")
        expected_prev, checked = GENESIS_HASH, 0
        for event in _batches(legacy, "id", batch_size):
            if event.prev_hash != expected_prev:
                raise LegacyChainBroken(event.pk, "prev_hash does not match the previous event's hash")
            if event.compute_legacy_hash() != event.hash:
                raise LegacyChainBroken(event.pk, "hash does not match the event's contents")
            expected_prev = event.hash
            checked += 1
        if AuditEvent.objects.filter(seq__isnull=True, hash__isnull=True, id__lt=_max_id(legacy)).exists():
            raise LegacyChainBroken(0, "unsealed new events sit between the old ones: an inconsistent log")
        prev = GENESIS_HASH
        pending: list[AuditEvent] = []
        for seq, event in enumerate(_batches(legacy, "id", batch_size), start=1):
            event.seq, event.prev_hash = seq, prev
            event.hash = event.compute_hash(key)
            prev = event.hash
            pending.append(event)
            if len(pending) >= batch_size:
                _write_seals(pending)
                pending = []
        if pending:
            _write_seals(pending)
        record_event(
            EventType.AUDIT_RESEALED,
            target_type="auditlog",
            data={"legacy_count": checked, "legacy_last_hash": expected_prev, "sealed_head_hash": prev},
        )
    return checked, expected_prev


def _max_id(queryset: QuerySet[AuditEvent]) -> int:
    return queryset.order_by("-id").values_list("id", flat=True).first() or 0


class LegacyChainBroken(Exception):
    def __init__(self, event_id: int, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}" if event_id else reason)
        self.event_id, self.reason = event_id, reason


@dataclass
class ChainBreak:
    event_id: int
    reason: str


def verify_chain(batch_size: int = 2000, *, seal: bool = True) -> tuple[int, ChainBreak | None]:
    """Seal what is waiting (unless `seal` is off), then walk the sealed chain in seq order, checking
    every keyed hash and link; return (events checked, first break or None). Events from before keyed
    sealing, not yet resealed, are a break (they are not keyed)."""
    if seal:
        with contextlib.suppress(LegacyLogError):  # reported as a break below
            seal_events()
    legacy = AuditEvent.objects.filter(seq__isnull=True, hash__isnull=False).order_by("id").first()
    keys = hmac_keys()
    expected_prev = GENESIS_HASH
    checked = 0
    for event in _batches(AuditEvent.objects.filter(seq__isnull=False), "seq", batch_size):
        if event.seq != checked + 1:
            return checked, ChainBreak(event.pk, f"seq {event.seq} follows {checked}: sealed events are missing")
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.pk, "prev_hash does not match the previous event's hash")
        if not any(event.compute_hash(key) == event.hash for key in keys):
            return checked, ChainBreak(event.pk, "hash does not match the event's contents (keyed)")
        expected_prev = event.hash or ""
        checked += 1
    if legacy is not None:
        return checked, ChainBreak(
            legacy.pk, "written before keyed sealing and not resealed: run `manage.py audit_seal_legacy`"
        )
    return checked, None


def _batches(queryset: QuerySet[AuditEvent], key: str, batch_size: int) -> Iterator[AuditEvent]:
    last: int = 0
    while True:
        batch = list(queryset.filter(**{f"{key}__gt": last}).order_by(key)[:batch_size])
        if not batch:
            return
        yield from batch
        last = getattr(batch[-1], key)


def make_checkpoint(*, seal: bool = True) -> dict[str, Any]:
    """A signed checkpoint of the sealed chain as it is now: count (= the head's seq), head hash, time."""
    if seal:
        seal_events()
    count, head = _chain_head()
    body = {"count": count, "head_hash": head, "time": timezone.now().isoformat()}
    key_id, signature = sign(cp.signed_message({**body, "key_id": _current_key_id()}))
    return {**body, "key_id": key_id, "signature": signature}


def _current_key_id() -> str:
    from audit.lib.keys import key_id, raw_public, signing_key

    return key_id(raw_public(signing_key().public_key()))


def send_checkpoint(checkpoint: dict[str, Any], *, output: str | None = None) -> None:
    """Out of the database: a log line always, HITL_AUDIT_CHECKPOINT_FILE (appended, one JSON line
    each), `output` (written, one checkpoint), and an email to HITL_AUDIT_ANCHOR_EMAILS."""
    line = canonical_json(checkpoint)
    logger.info("audit checkpoint %s", line)
    if settings.HITL_AUDIT_CHECKPOINT_FILE:
        with open(settings.HITL_AUDIT_CHECKPOINT_FILE, "a", encoding="utf-8") as stream:
            stream.write(line + "\n")
    if output:
        with open(output, "w", encoding="utf-8") as stream:
            stream.write(line + "\n")
    if settings.HITL_AUDIT_ANCHOR_EMAILS:
        from django.core.mail import send_mail

        send_mail(
            f"HITL audit checkpoint: {checkpoint['count']} events",
            "Keep this message: `manage.py audit_verify --checkpoint` proves the audit log still holds every "
            "event up to it, unchanged.\n\n" + line + "\n",
            None,
            settings.HITL_AUDIT_ANCHOR_EMAILS,
        )


def verify_checkpoint(checkpoint: dict[str, Any], *, public_keys: list[str] | None = None) -> list[str]:
    """What is wrong between the database and one checkpoint (empty: the database still holds every
    event up to it, unchanged). Checks the signature, then the sealed event at the checkpoint's count.
    The chain itself (every hash and link up to the head) is `verify_chain`'s."""
    problems = cp.check_signature(checkpoint, trusted_public_keys(public_keys))
    if problems:
        return problems
    count, head_hash = int(checkpoint["count"]), str(checkpoint["head_hash"])
    if count == 0:
        return []
    our_count, _ = _chain_head()
    if our_count < count:
        return [
            f"the checkpoint of {checkpoint['time']} counts {count} sealed events, the database holds {our_count}: "
            "events were removed from the end of the log, or an older backup was restored"
        ]
    at = AuditEvent.objects.filter(seq=count).values_list("hash", flat=True).first()
    if at != head_hash:
        return [
            f"event #{count} does not carry the hash of the checkpoint of {checkpoint['time']}: the history up to "
            "it was rewritten (or an older backup was restored and written on)"
        ]
    return []


def read_checkpoints(value: str) -> list[dict[str, Any]]:
    """Checkpoints from a file (one JSON object per line, as HITL_AUDIT_CHECKPOINT_FILE holds them) or
    from the JSON value itself."""
    text = value
    if not value.lstrip().startswith("{"):
        with open(value, encoding="utf-8") as stream:
            text = stream.read()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class AuditExport:
    """A started export: its range (selected events sealed with seq ≤ up_to_seq) and its own audit event."""

    event: AuditEvent
    up_to_seq: int
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

    Waiting events are sealed first; the range is then every selected event sealed so far (seq ≤ the
    chain's head), so the file is the same however long the download takes and never contains its
    own event. The event records the format, the filters, the count and the hash of the last exported
    event: the anchor a verifier can check a file's end against (`audit_verify --file ...
    --expect-last-hash`); a checkpoint (`--checkpoint`) anchors a full export against its signature.
    """
    with contextlib.suppress(LegacyLogError):  # verified and reported as a break below
        seal_events()
    with transaction.atomic():
        up_to_seq, _ = _chain_head()
        selected = queryset.filter(seq__isnull=False, seq__lte=up_to_seq)
        count = selected.count()
        last = selected.order_by("-seq").values("id", "seq", "hash").first() or {"id": None, "seq": None, "hash": ""}
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
                "up_to_seq": up_to_seq,
                "last_id": last["id"],
                "last_seq": last["seq"],
                "last_hash": last["hash"],
            },
        )
    return AuditExport(event=event, up_to_seq=up_to_seq, count=count, last_hash=str(last["hash"] or ""))
