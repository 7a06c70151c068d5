from typing import Any

from django.core.management.base import BaseCommand

from hitl.services.sweep import sweep


class Command(BaseCommand):
    help = (
        "Run one pass of the deadline sweeper (timeouts, SLA, reminders, escalation, webhook retries); "
        "the workers run it every minute. Prints what it did."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(str(sweep()))
