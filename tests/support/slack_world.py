"""Fixtures for the Slack tests: a fake Slack on 127.0.0.1 and a deployment configured to use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hitl.lib import crypto
from tests.support.base import World
from tests.support.slack_fake import FakeSlack, running

TOKEN = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
RULE_TOKEN = "xoxb-3333333333-4444444444-ZyXwVuTsRqPoNmLkJiHgFeDc"
RULE_SECRET = "0123456789abcdef0123456789abcdef"
CHANNEL = "C0REVIEWS01"
OTHER_CHANNEL = "C0ELSEWHERE"
ANN = "U0ANN00001"  # the assignee, ann@example.com
BOB = "U0BOB00001"  # someone else in the channel


@pytest.fixture
def slack_api(settings: Any) -> Iterator[FakeSlack]:
    from django.core.cache import cache

    cache.clear()  # users.info answers are cached per process
    settings.HITL_EGRESS_ALLOWED_HOSTS = ["127.0.0.1"]
    with running(FakeSlack(users={ANN: "Ann@Example.com", BOB: "bob@example.com"})) as fake:
        settings.HITL_SLACK_API_BASE = fake.url
        yield fake
    cache.clear()


@pytest.fixture
def slack_world(world: World, slack_api: FakeSlack) -> World:
    world.deployment.slack_channel_id = CHANNEL
    world.deployment.slack_bot_token = crypto.encrypt(TOKEN)
    world.deployment.slack_signing_secret = crypto.encrypt(SECRET)
    world.deployment.save()
    return world
