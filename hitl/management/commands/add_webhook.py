from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Deployment
from hitl.channels.webhook_outbox import create_webhook
from hitl.lib.errors import InvalidInput
from hitl.models import WebhookEvent


class Command(BaseCommand):
    help = (
        "Add an outbound webhook to a deployment. Prints the webhook id, then its signing secret alone "
        "on the last line (shown once; only its ciphertext is stored)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", type=int, required=True)
        parser.add_argument("--url", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--event",
            action="append",
            default=[],
            choices=WebhookEvent.values,
            help="Subscribe to this event only (repeatable; default: every event).",
        )
        parser.add_argument("--max-retries", type=int, default=None, help="0 never retries (the seed's behaviour).")
        parser.add_argument("--inactive", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = Deployment.objects.filter(pk=options["deployment"]).first()
        if deployment is None:
            raise CommandError(f"No deployment with id {options['deployment']}.")
        if options["max_retries"] is not None and not 0 <= options["max_retries"] <= 20:
            raise CommandError("--max-retries must be between 0 and 20.")
        try:
            webhook, secret = create_webhook(
                deployment,
                url=options["url"],
                name=options["name"],
                events=options["event"],
                active=not options["inactive"],
                max_retries=options["max_retries"],
                actor="cli",
                source="cli",
            )
        except InvalidInput as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(str(webhook.pk))
        self.stdout.write(secret)
