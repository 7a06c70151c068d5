"""Verify an exported audit file (JSON Lines or CSV) without the server.

Standard library only: a third party can copy this one file and run

    python3 verify_export.py audit-20260114T120300Z.jsonl [--expect-last-hash H] [--expect-count N] [--complete]

Every event's `hash` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of its
columns `created_at, event_type, actor, source, target_type, target_id, deployment_id, data,
prev_hash`; each event's `prev_hash` is the previous event's `hash` (the first event of the log has
64 zeros). The check recomputes every hash (an altered line fails) and follows the links between
consecutive lines. The last line has no successor: compare its hash with an anchor you trust, e.g. the
`last_hash` the server recorded in the export's own `audit.exported` event, with `--expect-last-hash`,
and the number of lines with its `count`, with `--expect-count`.

Every line carries its own hash and the hash of the event before it in the log, so a filtered export
(an API key's, a manager's, by event type, ...) verifies event by event: where the event before a line is
not in the file, that is a *gap*, counted and reported, not an error. What a file with gaps proves: each
line is intact against its own hash, the lines are in log order, lines that were neighbours in the log
still link, and (with the anchors) that it ends where and has as many lines as the server said. What it
does not prove: that nothing is missing in a gap, nor that a line in front of a gap was not re-hashed.
Only a full export, checked with `--complete` (gaps are errors), proves the slice complete.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

GENESIS_HASH = "0" * 64
HASHED = (
    "created_at",
    "event_type",
    "actor",
    "source",
    "target_type",
    "target_id",
    "deployment_id",
    "data",
    "prev_hash",
)


def event_hash(record: dict[str, Any]) -> str:
    """The hash the server computed for this event (audit.models.AuditEvent.compute_hash)."""
    hashed = {name: record[name] for name in HASHED}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _from_csv_cell(value: str) -> str:
    # The export prefixes "'" to cells a spreadsheet would run as a formula (and to cells starting
    # with "'"), so exactly one leading "'" is the escape.
    return value[1:] if value.startswith("'") else value


def read_records(lines: Iterable[str], fmt: str) -> Iterator[dict[str, Any]]:
    """Records from an export's lines; `fmt` is "jsonl" or "csv"."""
    if fmt == "jsonl":
        for line in lines:
            if line.strip():
                yield json.loads(line)
        return
    for row in csv.DictReader(lines):
        record: dict[str, Any] = {key: _from_csv_cell(value) for key, value in row.items()}
        record["id"] = int(record["id"])
        record["deployment_id"] = int(record["deployment_id"]) if record["deployment_id"] else None
        record["data"] = json.loads(record["data"])
        yield record


@dataclass
class Verification:
    events: int = 0
    links: int = 0
    gaps: int = 0
    first_id: int | None = None
    last_id: int | None = None
    last_hash: str = ""
    starts_at_genesis: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.events:
            return "no events in the file"
        origin = "from the start of the log" if self.starts_at_genesis else f"from event {self.first_id}"
        gaps = (
            f"{self.gaps} gaps (events not in this file, as in any filtered export: it does not prove completeness)"
            if self.gaps
            else "no gaps"
        )
        span = f"{self.events} events ({origin} to {self.last_id})"
        return f"{span}: {self.links} links followed, {gaps}; last hash {self.last_hash}"


def verify_records(
    records: Iterable[dict[str, Any]],
    *,
    complete: bool = False,
    expect_last_hash: str | None = None,
    expect_count: int | None = None,
    max_problems: int = 20,
) -> Verification:
    """Check every hash and every link between lines; a broken link is a gap, or with `complete` an
    error. Streams, so any file size works."""
    result = Verification()
    previous: dict[str, Any] | None = None

    def problem(message: str) -> None:
        if len(result.problems) < max_problems:
            result.problems.append(message)

    for record in records:
        result.events += 1
        event_id = record.get("id")
        if result.first_id is None:
            result.first_id = event_id
            result.starts_at_genesis = record.get("prev_hash") == GENESIS_HASH
        try:
            if event_hash(record) != record.get("hash"):
                problem(f"event {event_id}: hash does not match its contents (the line was altered)")
        except KeyError as exc:
            problem(f"event {event_id}: missing column {exc}")
        if previous is not None:
            if not isinstance(event_id, int) or event_id <= previous["id"]:
                problem(f"event {event_id}: out of order after event {previous['id']}")
            if record.get("prev_hash") == previous.get("hash"):
                result.links += 1
            elif complete:
                problem(
                    f"event {event_id}: prev_hash is not the hash of event {previous['id']} "
                    "(an event before it was removed, inserted or altered, or the export is filtered)"
                )
            else:
                result.gaps += 1
        previous = record
        result.last_id = event_id
        result.last_hash = str(record.get("hash", ""))
    if expect_last_hash and result.last_hash != expect_last_hash:
        problem(f"the file ends at hash {result.last_hash or '(none)'}, expected {expect_last_hash}")
    if expect_count is not None and result.events != expect_count:
        problem(f"the file has {result.events} events, expected {expect_count}")
    return result


def verify_file(
    stream: TextIO,
    fmt: str,
    *,
    complete: bool = False,
    expect_last_hash: str | None = None,
    expect_count: int | None = None,
) -> Verification:
    return verify_records(
        read_records(stream, fmt), complete=complete, expect_last_hash=expect_last_hash, expect_count=expect_count
    )


def guess_format(path: str) -> str:
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an exported HITL audit file's hash chain.")
    parser.add_argument("path", help="the exported file (.jsonl or .csv); - for standard input")
    parser.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file name")
    parser.add_argument("--complete", action="store_true", help="a full export: a gap between lines is an error")
    parser.add_argument("--partial", action="store_true", help="the default (gaps allowed); kept for old scripts")
    parser.add_argument("--expect-last-hash", help="the hash the last line must carry")
    parser.add_argument("--expect-count", type=int, help="the number of events the file must hold")
    args = parser.parse_args(argv)
    fmt = args.format or guess_format(args.path)
    anchors = {"expect_last_hash": args.expect_last_hash, "expect_count": args.expect_count}
    if args.path == "-":
        result = verify_file(sys.stdin, fmt, complete=args.complete, **anchors)
    else:
        with open(args.path, encoding="utf-8", newline="") as stream:
            result = verify_file(stream, fmt, complete=args.complete, **anchors)
    for message in result.problems:
        print(f"BROKEN: {message}", file=sys.stderr)
    print(("OK: " if result.ok else "FAILED: ") + result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
