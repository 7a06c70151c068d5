from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.lib.keys import hmac_keys, trusted_public_keys
from audit.lib.verify_export import check_signature, guess_format, read_checkpoint, verify_file
from audit.services import read_checkpoints, unsealed_alarm, verify_chain, verify_checkpoint


class Command(BaseCommand):
    help = (
        "Check the audit log's keyed hash chain; exits non-zero and names the first broken event. "
        "With --checkpoint, also prove the log still holds every event up to that signed checkpoint. "
        "With --file, check an exported file (JSON Lines or CSV) instead."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            help="a checkpoint of `audit_checkpoint`: its JSON, or a file of them (every line is checked); repeatable",
        )
        parser.add_argument(
            "--public-key", action="append", default=[], help="a trusted checkpoint public key besides the settings'"
        )
        parser.add_argument("--file", help="an export of `audit_export` or GET /api/v1/audit/")
        parser.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file name")
        parser.add_argument(
            "--complete", action="store_true", help="a full export: a gap between lines is an error, not a filter"
        )
        parser.add_argument("--partial", action="store_true", help="the default (gaps allowed); kept for old scripts")
        parser.add_argument("--expect-last-hash", help="the hash the file's last event must carry")
        parser.add_argument("--expect-count", type=int, help="the number of events the file must hold")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["file"]:
            self._verify_file(options)
            return
        problems: list[str] = []
        # Before sealing: an event the sealer left waiting for over a minute is an alarm in itself.
        stale, oldest = unsealed_alarm()
        if stale:
            problems.append(
                f"{stale} audit events have waited unsealed since {oldest:%Y-%m-%d %H:%M:%S} UTC: is the sealer "
                "(`hitl worker`) running?"
            )
        checked, broken = verify_chain()
        if broken is not None:
            problems.append(f"audit chain broken at event {broken.event_id}: {broken.reason}")
        checkpoints = [c for value in options["checkpoint"] for c in read_checkpoints(value)]
        for checkpoint in checkpoints:
            problems.extend(verify_checkpoint(checkpoint, public_keys=options["public_key"]))
        if problems:
            raise CommandError("; ".join(problems))
        anchored = f", consistent with {len(checkpoints)} signed checkpoint(s)" if checkpoints else ""
        self.stdout.write(f"audit chain intact: {checked} events verified{anchored}")

    def _verify_file(self, options: dict[str, Any]) -> None:
        path = options["file"]
        checkpoint = None
        if options["checkpoint"]:
            checkpoint = read_checkpoint(options["checkpoint"][-1])
            signature = check_signature(checkpoint, trusted_public_keys(options["public_key"]))
            if signature:
                raise CommandError(f"{path}: " + "; ".join(signature))
        with open(path, encoding="utf-8", newline="") as stream:
            result = verify_file(
                stream,
                options["format"] or guess_format(path),
                complete=options["complete"],
                expect_last_hash=options["expect_last_hash"],
                expect_count=options["expect_count"],
                key=hmac_keys()[0],
                checkpoint=checkpoint,
            )
        if not result.ok:
            raise CommandError(f"{path}: " + "; ".join(result.problems))
        self.stdout.write(f"{path}: export intact: {result.summary()}")
