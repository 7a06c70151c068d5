"""`manage.py configure_slack` (issue 20): sets a deployment's Slack app and channel from a script."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from hitl.lib import crypto
from tests.support.base import World
from tests.support.slack_fake import FakeSlack
from tests.support.slack_world import CHANNEL, SECRET, TOKEN

pytestmark = pytest.mark.django_db


class TestConfigureSlack:
    def test_it_configures_the_deployment_and_prints_its_id_last(self, world: World, slack_api: FakeSlack) -> None:
        out = StringIO()
        call_command(
            "configure_slack",
            "--deployment",
            str(world.deployment.pk),
            "--bot-token",
            TOKEN,
            "--signing-secret",
            SECRET,
            "--channel",
            CHANNEL,
            stdout=out,
        )
        lines = out.getvalue().strip().splitlines()
        assert lines[-1] == str(world.deployment.pk)
        assert f"https://hitl.example.test/slack/{world.deployment.pk}/interactions/" in lines[0]
        world.deployment.refresh_from_db()
        assert crypto.decrypt(world.deployment.slack_bot_token) == TOKEN
        assert crypto.decrypt(world.deployment.slack_signing_secret) == SECRET
        event = AuditEvent.objects.get(event_type="config.changed", source="cli")
        assert event.data == {"action": "slack.configured", "channel": CHANNEL}
        assert TOKEN not in json.dumps(event.data) and SECRET not in json.dumps(event.data)
        # The deployment now takes channel=slack.
        world.create(channel="slack")
        assert len(slack_api.called("chat.postMessage")) == 1

    def test_it_refuses_bad_values_and_unknown_deployments(self, world: World) -> None:
        with pytest.raises(CommandError, match="bot_token: Expected .* channel: Expected a channel id"):
            call_command(
                "configure_slack",
                "--deployment",
                str(world.deployment.pk),
                "--bot-token",
                "nope",
                "--signing-secret",
                SECRET,
                "--channel",
                "#general",
            )
        with pytest.raises(CommandError, match="No deployment with id 999999"):
            call_command(
                "configure_slack",
                "--deployment",
                "999999",
                "--bot-token",
                TOKEN,
                "--signing-secret",
                SECRET,
                "--channel",
                CHANNEL,
            )
        world.deployment.refresh_from_db()
        assert world.deployment.slack_bot_token == ""
