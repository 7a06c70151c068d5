from django.core.management.base import BaseCommand, CommandError

from audit.services import verify_chain


class Command(BaseCommand):
    help = "Check the audit log's hash chain; exits non-zero and names the first broken event."

    def handle(self, *args: object, **options: object) -> None:
        checked, broken = verify_chain()
        if broken is not None:
            raise CommandError(f"audit chain broken at event {broken.event_id}: {broken.reason}")
        self.stdout.write(f"audit chain intact: {checked} events verified")
