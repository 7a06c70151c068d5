from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiKey, Deployment
from accounts.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key for a deployment; prints the key, once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", type=int, required=True)
        parser.add_argument("--name", default="default")
        parser.add_argument("--read-only", action="store_true", help="A key that may read but not act.")

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = Deployment.objects.filter(pk=options["deployment"]).first()
        if deployment is None:
            raise CommandError(f"No deployment with id {options['deployment']}.")
        access = ApiKey.Access.READ if options["read_only"] else ApiKey.Access.FULL
        _, secret = create_api_key(deployment, name=options["name"], access=access, actor="cli")
        self.stdout.write(secret)
