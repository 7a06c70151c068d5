"""Notification channels. Adding one is a module with a `Channel` subclass plus one line here."""

CHANNELS: list[str] = [
    "hitl.channels.email.EmailChannel",
    "hitl.channels.webhook.WebhookChannel",
    "flows.channel.FlowChannel",
    "hitl.channels.telegram.TelegramChannel",
]
