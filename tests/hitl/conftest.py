"""Fixtures shared by the requests app's tests."""

from tests.support.slack_world import slack_api, slack_world  # noqa: F401 (fixtures)
