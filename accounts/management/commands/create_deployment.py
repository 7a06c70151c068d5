from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.services import create_deployment


class Command(BaseCommand):
    help = "Create a deployment; prints its id alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--creator-email", required=True)
        parser.add_argument("--organization", default="Default")
        parser.add_argument("--flow", action="append", default=[], help="Registered flow to attach (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["flow"]:
            from django.core.management.base import CommandError

            raise CommandError("Server-side flows are not available yet in this version; omit --flow.")
        deployment = create_deployment(
            name=options["name"],
            creator_email=options["creator_email"],
            organization=options["organization"],
            actor="cli",
        )
        self.stdout.write(str(deployment.pk))
