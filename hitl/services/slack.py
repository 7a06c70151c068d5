"""Setting up a deployment's Slack app from a script (`manage.py configure_slack`); the admin's form does
the same for ops staff."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Deployment
from audit.models import EventType
from audit.services import record_event
from hitl.channels import slack
from hitl.lib import crypto
from hitl.lib.errors import InvalidInput


@transaction.atomic
def configure_slack(
    deployment: Deployment, *, bot_token: str, signing_secret: str, channel_id: str, actor: str, source: str = "cli"
) -> Deployment:
    """Store the app's bot token and signing secret (encrypted) and the channel; audited without secrets."""
    errors: dict[str, list[str]] = {}
    if not slack.TOKEN_RE.match(bot_token):
        errors["bot_token"] = ["Expected the app's Bot User OAuth Token (xoxb-…)."]
    if not slack.SECRET_RE.match(signing_secret):
        errors["signing_secret"] = ["Expected the app's signing secret (letters and digits)."]
    if not slack.CHANNEL_RE.match(channel_id):
        errors["channel"] = ["Expected a channel id such as C0123456789, not its name."]
    if errors:
        raise InvalidInput(errors)
    deployment.slack_bot_token = crypto.encrypt(bot_token)
    deployment.slack_signing_secret = crypto.encrypt(signing_secret)
    deployment.slack_channel_id = channel_id
    deployment.save(update_fields=["slack_bot_token", "slack_signing_secret", "slack_channel_id"])
    record_event(
        EventType.CONFIG_CHANGED,
        actor=actor,
        source=source,
        target=deployment,
        deployment_id=deployment.pk,
        data={"action": "slack.configured", "channel": channel_id},
    )
    return deployment
