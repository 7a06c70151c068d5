"""Audit export as CSV or JSON Lines, streamed in constant memory (SPEC §10).

Every line carries the event's `id`, every hashed column, `seq`, `prev_hash` and `hash`, so a third party
can recompute each hash (with the key) and follow the chain with `audit/lib/verify_export.py`, and check
it against a signed checkpoint. Only sealed events are exported, in chain order (`seq`).
Events are read in keyset batches (`seq > last ORDER BY seq LIMIT n`): memory stays flat however large
the export, no server-side cursor or long transaction is held, and each batch is one short query.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit.lib.csvcells import Echo, escape_cell
from audit.models import AuditEvent, canonical_json

FORMATS = {"jsonl": "application/jsonl; charset=utf-8", "csv": "text/csv; charset=utf-8"}
COLUMNS = (
    "id",
    "created_at",
    "event_type",
    "actor",
    "source",
    "target_type",
    "target_id",
    "deployment_id",
    "data",
    "seq",
    "prev_hash",
    "hash",
)
BATCH_SIZE = 2000


@dataclass(frozen=True)
class AuditFilters:
    """The export filters of the API, the command and (recorded) the admin. `until` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()
    target_type: str = ""
    target_id: str = ""
    actor: str = ""
    source: str = ""
    deployment: int | None = None
    after_id: int | None = None

    @classmethod
    def for_request(cls, request_id: str, **others: Any) -> AuditFilters:
        return cls(target_type="hitlrequest", target_id=str(request_id), **others)

    def q(self) -> Q:
        q = Q()
        if self.since:
            q &= Q(created_at__gte=self.since)
        if self.until:
            q &= Q(created_at__lt=self.until)
        if self.event_types:
            q &= Q(event_type__in=self.event_types)
        if self.target_type:
            q &= Q(target_type=self.target_type)
        if self.target_id:
            q &= Q(target_id=self.target_id)
        if self.actor:
            q &= Q(actor__iexact=self.actor)
        if self.source:
            q &= Q(source=self.source)
        if self.deployment is not None:
            q &= Q(deployment_id=self.deployment)
        if self.after_id is not None:
            q &= Q(id__gt=self.after_id)
        return q

    def describe(self) -> dict[str, Any]:
        """The filters that were set, JSON-ready, for the export's own audit event."""
        described: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value in (None, "", ()):
                continue
            described[name] = value.isoformat() if isinstance(value, datetime) else value
        if "event_types" in described:
            described["event_types"] = list(described["event_types"])
        return described


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """A database row as an exported record: the hashed columns exactly as `compute_hash` sees them."""
    return {
        "id": row["id"],
        "created_at": row["created_at"].isoformat(),
        "event_type": row["event_type"],
        "actor": row["actor"],
        "source": row["source"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "deployment_id": row["deployment_id"],
        "data": row["data"],
        "seq": row["seq"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


def iter_records(
    queryset: QuerySet[AuditEvent], *, up_to_seq: int, batch_size: int = BATCH_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """Batches of records of `queryset` sealed with seq ≤ up_to_seq, in chain order (keyset pagination)."""
    rows = queryset.filter(seq__isnull=False, seq__lte=up_to_seq).order_by("seq").values(*COLUMNS)
    last_seq = 0
    while True:
        batch = [record_of(row) for row in rows.filter(seq__gt=last_seq)[:batch_size]]
        if not batch:
            return
        yield batch
        last_seq = batch[-1]["seq"]


def jsonl_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


_csv = csv.writer(Echo(), lineterminator="\n")


def csv_header() -> str:
    return str(_csv.writerow(COLUMNS))


def csv_line(record: dict[str, Any]) -> str:
    cells = {**record, "data": canonical_json(record["data"])}
    if cells["deployment_id"] is None:
        cells["deployment_id"] = ""
    return str(_csv.writerow([escape_cell(cells[column]) for column in COLUMNS]))


def export_lines(
    queryset: QuerySet[AuditEvent],
    fmt: str,
    *,
    up_to_seq: int,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The export file, one chunk per batch (a header line first for CSV)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    line = jsonl_line if fmt == "jsonl" else csv_line
    if fmt == "csv":
        yield csv_header()
    done = 0
    for batch in iter_records(queryset, up_to_seq=up_to_seq, batch_size=batch_size):
        yield "".join(line(record) for record in batch)
        done += len(batch)
        if progress is not None:
            progress(done)


def streaming_response(queryset: QuerySet[AuditEvent], fmt: str, *, export: Any) -> StreamingHttpResponse:
    """The HTTP download of a started export (`audit.services.start_audit_export`)."""
    response = StreamingHttpResponse(
        export_lines(queryset, fmt, up_to_seq=export.up_to_seq, batch_size=BATCH_SIZE), content_type=FORMATS[fmt]
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    response["X-Audit-Export-Event"] = str(export.event.pk)
    response["X-Audit-Export-Count"] = str(export.count)
    response["X-Audit-Export-Last-Hash"] = export.last_hash
    return response
