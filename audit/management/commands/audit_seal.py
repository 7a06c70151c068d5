"""`manage.py audit_seal`: seal the audit events waiting for it (the worker's sealer does it every second)."""

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.services import SEAL_BATCH, LegacyLogError, seal_events


class Command(BaseCommand):
    help = "Seal every committed unsealed audit event into the keyed chain; prints how many were sealed last."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=SEAL_BATCH, help="events per transaction")
        parser.add_argument("--loop", action="store_true", help="keep sealing, every --interval seconds")
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            while True:
                sealed = seal_events(options["batch_size"])
                if not options["loop"]:
                    break
                time.sleep(options["interval"])
        except LegacyLogError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(sealed))
