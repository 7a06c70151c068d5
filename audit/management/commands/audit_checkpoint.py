"""`manage.py audit_checkpoint`: a signed checkpoint of the audit chain, sent out of the database (SPEC §18)."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.lib.keys import AuditKeyError, generate_signing_key, public_key_of
from audit.models import canonical_json
from audit.services import make_checkpoint, send_checkpoint


class Command(BaseCommand):
    help = (
        "Seal what is waiting, then sign a checkpoint (count, head hash, time; Ed25519 with "
        "HITL_AUDIT_SIGNING_KEY) and send it out: a log line, HITL_AUDIT_CHECKPOINT_FILE, an email to "
        "HITL_AUDIT_ANCHOR_EMAILS, and --output FILE (printed last). Without --output, prints the checkpoint."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--output", help="write this one checkpoint to FILE (and print FILE last)")
        parser.add_argument(
            "--generate-key",
            action="store_true",
            help="print a new HITL_AUDIT_SIGNING_KEY, and its public key on the line before; records nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate_key"]:
            private = generate_signing_key()
            self.stdout.write(f"public key (for HITL_AUDIT_VERIFY_KEYS after a rotation): {public_key_of(private)}")
            self.stdout.write(private)
            return
        try:
            checkpoint = make_checkpoint()
        except AuditKeyError as exc:
            raise CommandError(str(exc)) from exc
        send_checkpoint(checkpoint, output=options["output"])
        self.stdout.write(options["output"] or canonical_json(checkpoint))
