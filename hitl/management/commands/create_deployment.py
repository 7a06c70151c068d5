from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.services import create_deployment
from flows.services import attach_flows
from hitl.lib.errors import HitlError


class Command(BaseCommand):
    help = "Create a deployment; prints its id alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--creator-email", required=True)
        parser.add_argument("--organization", default="Default")
        parser.add_argument("--flow", action="append", default=[], help="Registered flow to attach (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # One transaction: an unknown flow name leaves no deployment behind.
            with transaction.atomic():
                deployment = create_deployment(
                    name=options["name"],
                    creator_email=options["creator_email"],
                    organization=options["organization"],
                    actor="cli",
                )
                attach_flows(deployment, options["flow"], actor="cli")
        except HitlError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(str(deployment.pk))
