from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Deployment
from hitl.channels.slack import interactions_url
from hitl.lib.errors import InvalidInput
from hitl.services.slack import configure_slack


class Command(BaseCommand):
    help = (
        "Set a deployment's Slack app (bot token, signing secret) and channel; prints the interactivity "
        "request URL to give Slack, then the deployment id alone on the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", type=int, required=True)
        parser.add_argument("--bot-token", required=True, help="the app's Bot User OAuth Token, xoxb-…")
        parser.add_argument("--signing-secret", required=True)
        parser.add_argument("--channel", required=True, help="the channel id, e.g. C0123456789")

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = Deployment.objects.filter(pk=options["deployment"]).first()
        if deployment is None:
            raise CommandError(f"No deployment with id {options['deployment']}.")
        try:
            configure_slack(
                deployment,
                bot_token=options["bot_token"].strip(),
                signing_secret=options["signing_secret"].strip(),
                channel_id=options["channel"].strip(),
                actor="cli",
            )
        except InvalidInput as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"Interactivity request URL: {interactions_url(deployment.pk)}")
        self.stdout.write(str(deployment.pk))
