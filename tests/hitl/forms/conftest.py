"""The Telegram channel's fixtures (a fake Bot API, a configured deployment), shared with these tests."""

from tests.hitl.channels.test_telegram import bot, configured  # noqa: F401 (fixtures)
