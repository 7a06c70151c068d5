"""`manage.py analytics_rebuild [--check]`: rebuild the analytics rollups from the requests (SPEC §19),
or check that they agree with them.

The services keep the rollups in the same transaction as every change, so they never need a rebuild
in normal operation: after an upgrade that adds them (or changes what they count), after rows were
written behind the services' back (a restore of the requests alone, a bulk load), or to prove they
agree. A rebuild reads the requests a few weeks at a time (bounded memory) in one transaction that
writers wait for (PostgreSQL: an EXCLUSIVE lock on the rollup table; SQLite: the write lock).
`--check` reads one consistent snapshot, lists the differences and exits 1 if there is any.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hitl.services.rollups import check_rollups, rebuild_rollups


class Command(BaseCommand):
    help = "Rebuild the analytics rollups from the requests, or --check that they agree."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Compare only; exit 1 listing the differences.")
        parser.add_argument("--limit", type=int, default=50, help="With --check: list at most this many.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        if options["check"]:
            differences = check_rollups(limit=options["limit"])
            for line in differences:
                self.stdout.write(line)
            if differences:
                raise CommandError(
                    f"The analytics rollups disagree with the requests ({len(differences)} differences listed); "
                    "run `manage.py analytics_rebuild`."
                )
            self.stdout.write(f"The analytics rollups agree with the requests ({time.monotonic() - started:.1f} s).")
            return

        def progress(start: date, end: date, written: int) -> None:
            if options["verbosity"] > 1:
                self.stdout.write(f"  {start} – {end}: {written:,} rollup rows ({time.monotonic() - started:.0f} s)")

        written = rebuild_rollups(progress=progress)
        self.stdout.write(f"Rebuilt {written:,} rollup rows in {time.monotonic() - started:.1f} s.")
