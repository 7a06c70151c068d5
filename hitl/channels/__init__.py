"""Notification channels. Adding one is a module with a `Channel` subclass plus one line here."""

CHANNELS: list[str] = [
    "hitl.channels.email.EmailChannel",
    "flows.channel.FlowChannel",
    # "hitl.channels.webhook.WebhookChannel",  (issue 4)
    # "hitl.channels.telegram.TelegramChannel" (issue 5)
]
