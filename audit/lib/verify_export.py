"""Verify an exported audit file (JSON Lines or CSV) without the server.

Standard library only (and the `cryptography` package for `--checkpoint`): a third party can copy this
one file and run

    python3 verify_export.py audit-20260114T120300Z.jsonl [--key-file K] [--checkpoint C --public-key P]
        [--expect-last-hash H] [--expect-count N] [--complete]

Every sealed event (SPEC §18) has a `seq`, its place in the one chain (1, 2, 3 …), and a `hash`:
HMAC-SHA256, keyed with the server's HITL_AUDIT_KEY, over the canonical JSON (sorted keys, no spaces,
UTF-8) of its columns `created_at, event_type, actor, source, target_type, target_id, deployment_id,
data, prev_hash, seq`; each event's `prev_hash` is the previous event's `hash` (the first event of
the log has 64 zeros). With the key (`--key-file`, or HITL_AUDIT_KEY in the environment) the check
recomputes every hash (an altered line fails); without it, it can follow the links only, and says so.
It always follows the links between consecutive lines. A checkpoint (`audit_checkpoint`'s signed
count, head hash and time) anchors a full export: its Ed25519 signature is checked with the public key
you were given (`--public-key`, repeatable), and the line whose seq is the checkpoint's count must carry
its head hash — so a file (or a database) that lost its tail, or was rewritten, fails.

Lines of exports made before keyed sealing have no `seq`: their `hash` is plain SHA-256 over the same
columns without `seq`, and is checked as such.

The last line has no successor: compare its hash with an anchor you trust, e.g. the
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
import hmac
import json
import os
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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(record: dict[str, Any], key: bytes | None = None) -> str | None:
    """The hash the server computed for this event (audit.models.AuditEvent.compute_hash): keyed with
    `key` for a sealed event (None without the key: it cannot be recomputed), plain SHA-256 for a line
    from before keyed sealing (no `seq`)."""
    hashed = {name: record[name] for name in HASHED}
    if record.get("seq") is None:
        return hashlib.sha256(_canonical(hashed).encode()).hexdigest()
    if key is None:
        return None
    hashed["seq"] = record["seq"]
    return hmac.new(key, _canonical(hashed).encode(), hashlib.sha256).hexdigest()


CHECKPOINT_FIELDS = ("count", "head_hash", "time", "key_id")


def signed_message(checkpoint: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return ("hitl-audit-checkpoint:" + _canonical({name: checkpoint[name] for name in CHECKPOINT_FIELDS})).encode()


def _b64(value: str) -> bytes:
    import base64

    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def public_keys_from(values: Iterable[str]) -> dict[str, Any]:
    """key_id → Ed25519 public key, from url-safe base64 raw public keys (needs `cryptography`)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return {hashlib.sha256(_b64(v)).hexdigest()[:16]: Ed25519PublicKey.from_public_bytes(_b64(v)) for v in values}


def check_signature(checkpoint: dict[str, Any], keys: dict[str, Any]) -> list[str]:
    """Problems with a checkpoint's form and signature (empty: signed by one of `keys`)."""
    missing = [name for name in (*CHECKPOINT_FIELDS, "signature") if name not in checkpoint]
    if missing:
        return [f"not a checkpoint: {', '.join(missing)} missing"]
    public = keys.get(str(checkpoint["key_id"]))
    if public is None:
        return [f"the checkpoint is signed by key {checkpoint['key_id']}, which is not among the trusted public keys"]
    try:
        public.verify(_b64(str(checkpoint["signature"])), signed_message(checkpoint))
    except Exception:  # cryptography's InvalidSignature, or a signature that is not base64
        return ["the checkpoint's signature is not valid: it was altered or forged"]
    return []


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
        if "seq" in record:
            record["seq"] = int(record["seq"]) if record["seq"] else None
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
    unkeyed: int = 0
    checkpoint_checked: bool = False
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
        keyed = f"; {self.unkeyed} keyed hashes NOT recomputed (no key given: links only)" if self.unkeyed else ""
        anchored = "; matches the signed checkpoint" if self.checkpoint_checked else ""
        return f"{span}: {self.links} links followed, {gaps}; last hash {self.last_hash}{keyed}{anchored}"


def verify_records(
    records: Iterable[dict[str, Any]],
    *,
    complete: bool = False,
    expect_last_hash: str | None = None,
    expect_count: int | None = None,
    max_problems: int = 20,
    key: bytes | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Verification:
    """Check every hash (keyed ones with `key`) and every link between lines; a broken link is a gap,
    or with `complete` an error. With `checkpoint` (whose signature the caller checked), the line at its
    count must carry its head hash. Streams, so any file size works."""
    result = Verification()
    previous: dict[str, Any] | None = None
    anchor_seq = int(checkpoint["count"]) if checkpoint else None
    anchor_found = False

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
            computed = event_hash(record, key)
            if computed is None:
                result.unkeyed += 1
            elif not hmac.compare_digest(computed, str(record.get("hash"))):
                problem(f"event {event_id}: hash does not match its contents (the line was altered)")
        except KeyError as exc:
            problem(f"event {event_id}: missing column {exc}")
        if checkpoint is not None and anchor_seq and record.get("seq") == anchor_seq:
            anchor_found = True
            if record.get("hash") != checkpoint["head_hash"]:
                problem(f"event {event_id} (seq {anchor_seq}) does not carry the checkpoint's head hash: rewritten")
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
    if checkpoint is not None and anchor_seq:
        if not anchor_found:
            problem(
                f"the checkpoint of {checkpoint['time']} counts {anchor_seq} events; the file has no event with that "
                "seq (its tail is missing, or it comes from an older backup)"
            )
        elif not result.problems:
            result.checkpoint_checked = True
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
    key: bytes | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Verification:
    return verify_records(
        read_records(stream, fmt),
        complete=complete,
        expect_last_hash=expect_last_hash,
        expect_count=expect_count,
        key=key,
        checkpoint=checkpoint,
    )


def read_checkpoint(value: str) -> dict[str, Any]:
    """One checkpoint: the JSON itself, or a file of them (one per line; the last, newest, is used)."""
    text = value
    if not value.lstrip().startswith("{"):
        with open(value, encoding="utf-8") as stream:
            text = stream.read()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"no checkpoint in {value!r}")
    loaded: dict[str, Any] = json.loads(lines[-1])
    return loaded


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
    parser.add_argument("--key-file", help="a file holding HITL_AUDIT_KEY (default: the HITL_AUDIT_KEY variable)")
    parser.add_argument("--checkpoint", help="a checkpoint (its JSON, or a file of them: the last line is used)")
    parser.add_argument("--public-key", action="append", default=[], help="a trusted checkpoint public key")
    args = parser.parse_args(argv)
    fmt = args.format or guess_format(args.path)
    key_text = os.environ.get("HITL_AUDIT_KEY")
    if args.key_file:
        with open(args.key_file, encoding="utf-8") as key_stream:
            key_text = key_stream.read().strip()
    anchors: dict[str, Any] = {
        "expect_last_hash": args.expect_last_hash,
        "expect_count": args.expect_count,
        "key": key_text.encode() if key_text else None,
    }
    if args.checkpoint:
        checkpoint = read_checkpoint(args.checkpoint)
        signature = check_signature(checkpoint, public_keys_from(args.public_key))
        if signature:
            print(f"BROKEN: {signature[0]}", file=sys.stderr)
            return 1
        anchors["checkpoint"] = checkpoint
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
