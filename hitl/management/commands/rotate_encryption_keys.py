from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hitl.lib.crypto import DecryptionError
from hitl.services.keys import rotate_encryption_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret at rest under the first key of HITL_ENCRYPTION_KEYS (put the new key "
        "first, keep the old ones after it until this has run). Prints how many values changed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = rotate_encryption_keys(actor="cli")
        except DecryptionError as exc:
            raise CommandError(f"{exc}; add the key it was encrypted with to HITL_ENCRYPTION_KEYS.") from None
        self.stdout.write(str(count))
