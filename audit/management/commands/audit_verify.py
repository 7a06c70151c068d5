from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.lib.verify_export import guess_format, verify_file
from audit.services import verify_chain


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain; exits non-zero and names the first broken event. "
        "With --file, check an exported file (JSON Lines or CSV) instead."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
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
        checked, broken = verify_chain()
        if broken is not None:
            raise CommandError(f"audit chain broken at event {broken.event_id}: {broken.reason}")
        self.stdout.write(f"audit chain intact: {checked} events verified")

    def _verify_file(self, options: dict[str, Any]) -> None:
        path = options["file"]
        with open(path, encoding="utf-8", newline="") as stream:
            result = verify_file(
                stream,
                options["format"] or guess_format(path),
                complete=options["complete"],
                expect_last_hash=options["expect_last_hash"],
                expect_count=options["expect_count"],
            )
        if not result.ok:
            raise CommandError(f"{path}: " + "; ".join(result.problems))
        self.stdout.write(f"{path}: export intact: {result.summary()}")
