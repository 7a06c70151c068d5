"""Notification channels. Adding one is a module with a `Channel` subclass plus one line here; an app
above the requests app (flows) adds its own with `register()` from its AppConfig.ready, so nothing here
imports it. The paths are also what `hitl.tasks.notify_channel` receives: keep them importable."""

CHANNELS: list[str] = [
    "hitl.channels.email.EmailChannel",
    "hitl.channels.webhook.WebhookChannel",
    "hitl.channels.telegram.TelegramChannel",
    "hitl.channels.slack.SlackChannel",
]


def register(path: str) -> None:
    """Add a channel class by dotted path (idempotent: ready() may run more than once in tests)."""
    if path not in CHANNELS:
        CHANNELS.append(path)
