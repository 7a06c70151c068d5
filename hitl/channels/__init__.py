"""Notification channels. Adding one is a module with a `Channel` subclass plus one line here."""

CHANNELS: list[str] = [
    # "hitl.channels.email.EmailChannel",      (issue 3)
    "hitl.channels.webhook.WebhookChannel",
    # "hitl.channels.telegram.TelegramChannel" (issue 5)
]
