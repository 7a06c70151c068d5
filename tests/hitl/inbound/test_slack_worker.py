"""What only a real worker proves for Slack (issue 20): the interactions endpoint acknowledges at once
and the press is answered later, on a `manage.py qcluster` subprocess, through the shared resolve path."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hitl.lib import crypto
from hitl.models import Resolution
from tests.support.base import build_world
from tests.support.qcluster import QCluster, wait_until
from tests.support.slack_fake import FakeSlack, block_actions, buttons_of, post_interaction
from tests.support.slack_world import ANN, CHANNEL, SECRET, TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


class TestSlackOnARealWorker:
    def test_the_press_is_acknowledged_at_once_and_answered_on_the_worker(
        self, qcluster: QCluster, slack_api: FakeSlack, settings: Any
    ) -> None:
        world = build_world()
        world.deployment.slack_channel_id = CHANNEL
        world.deployment.slack_bot_token = crypto.encrypt(TOKEN)
        world.deployment.slack_signing_secret = crypto.encrypt(SECRET)
        world.deployment.save()
        qcluster.extra_env["HITL_SLACK_API_BASE"] = settings.HITL_SLACK_API_BASE
        qcluster.start()
        created = world.create(channel="slack", assign_to="ann@example.com")
        posted = wait_until(lambda: slack_api.called("chat.postMessage"), cluster=qcluster)
        button = buttons_of(posted[0])["Approved"]

        slack_api.slow_users_info = 3.0  # the worker's part takes at least this long
        started = time.monotonic()
        response = post_interaction(
            world.deployment.pk, block_actions(ANN, CHANNEL, button["action_id"], button["value"]), SECRET
        )
        assert response.status_code == 200 and time.monotonic() - started < 2.5
        assert not Resolution.objects.filter(request_id=created["id"]).exists()

        resolution = wait_until(lambda: Resolution.objects.filter(request_id=created["id"]).first(), cluster=qcluster)
        assert (resolution.source, resolution.responder, resolution.outcome) == ("slack", "ann@example.com", "approved")
        wait_until(lambda: slack_api.called("chat.update"), cluster=qcluster)
        [ephemeral] = wait_until(lambda: slack_api.called("chat.postEphemeral"), cluster=qcluster)
        assert ephemeral.payload["text"] == "Recorded: Approved. Thank you!"
