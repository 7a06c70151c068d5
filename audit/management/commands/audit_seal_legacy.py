"""`manage.py audit_seal_legacy`: bring a log written before keyed sealing (SPEC §18) into the keyed chain."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.services import SEAL_BATCH, LegacyChainBroken, seal_legacy


class Command(BaseCommand):
    help = (
        "Verify the unkeyed SHA-256 chain of the events written before keyed sealing, then seal them (in id "
        "order, as the chain's first events) with HITL_AUDIT_KEY. Refuses, changing nothing, if the old "
        "chain does not verify. Prints the number of events resealed last."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=SEAL_BATCH)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count, last_hash = seal_legacy(options["batch_size"])
        except LegacyChainBroken as exc:
            raise CommandError(f"refused, nothing changed: the old audit chain does not verify: {exc}") from exc
        if count:
            self.stdout.write(f"old chain verified up to hash {last_hash}; recorded as an audit.resealed event")
        else:
            self.stdout.write("no events from before keyed sealing: nothing to do")
        self.stdout.write(str(count))
