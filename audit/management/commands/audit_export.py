"""`manage.py audit_export`: the audit log (or a filtered part) as JSON Lines or CSV, for large exports."""

from __future__ import annotations

import getpass
import sys
import time
from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.lib.export import BATCH_SIZE, FORMATS, AuditFilters, export_lines
from audit.models import AuditEvent, EventType
from audit.services import start_audit_export


def _moment(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"not an ISO 8601 date or date-time: {value!r}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


class Progress:
    """A one-line progress bar on a terminal (standard error), redrawn at most 10 times a second."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.drawn = total, stream, 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.drawn < 0.1 and done < self.total:
            return
        self.drawn = now
        fraction = done / self.total if self.total else 1.0
        bar = "#" * int(fraction * 30)
        self.stream.write(f"\r  [{bar:<30}] {fraction:4.0%}  {done:,}/{self.total:,} events")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class Command(BaseCommand):
    help = (
        "Export audit events as JSON Lines or CSV (to standard output or --output), with their hash chain; "
        "records the export as an audit.exported event. Verify a file with `audit_verify --file`."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
        parser.add_argument("--output", "-o", help="a file to write (default: standard output)")
        parser.add_argument("--since", type=_moment, help="ISO 8601 date or date-time, inclusive (UTC if naive)")
        parser.add_argument("--until", type=_moment, help="ISO 8601 date or date-time, exclusive")
        parser.add_argument("--event-type", action="append", default=[], choices=EventType.values, help="repeatable")
        parser.add_argument("--request", help="events about this request (its id)")
        parser.add_argument("--target-type")
        parser.add_argument("--target-id")
        parser.add_argument("--actor")
        parser.add_argument("--source")
        parser.add_argument("--deployment", type=int)
        parser.add_argument("--after-id", type=int, help="only events after this id")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    def handle(self, *args: Any, **options: Any) -> None:
        target = (
            {"target_type": "hitlrequest", "target_id": options["request"]}
            if options["request"]
            else {"target_type": options["target_type"] or "", "target_id": options["target_id"] or ""}
        )
        filters = AuditFilters(
            since=options["since"],
            until=options["until"],
            event_types=tuple(options["event_type"]),
            actor=options["actor"] or "",
            source=options["source"] or "",
            deployment=options["deployment"],
            after_id=options["after_id"],
            **target,
        )
        fmt, path = options["format"], options["output"]
        events = AuditEvent.objects.filter(filters.q())
        export = start_audit_export(
            events,
            fmt=fmt,
            filters=filters.describe(),
            actor=f"cli:{getpass.getuser()}",
            source="cli",
            deployment_id=filters.deployment,
        )
        # A progress bar only where a person watches it, and never mixed into the data.
        show = not options["no_progress"] and sys.stderr.isatty() and (path is not None or not sys.stdout.isatty())
        progress = Progress(export.count, sys.stderr) if show else None
        out: Any = open(path, "w", encoding="utf-8", newline="") if path else self.stdout  # noqa: SIM115
        try:
            for chunk in export_lines(
                events, fmt, up_to_seq=export.up_to_seq, batch_size=options["batch_size"], progress=progress
            ):
                out.write(chunk)
        finally:
            if path:
                out.close()
            if progress is not None:
                progress.close()
        sys.stderr.write(
            f"exported {export.count} events (up to seq {export.up_to_seq}; last hash {export.last_hash or '-'}); "
            f"recorded as audit event {export.event.pk}\n"
        )
        if path:
            self.stdout.write(path)
