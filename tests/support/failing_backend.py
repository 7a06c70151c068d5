from django.core.mail.backends.base import BaseEmailBackend


class FailingBackend(BaseEmailBackend):
    """An email backend whose server is down (for the failure-recording test)."""

    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("SMTP down")


class ExplodingChannel:
    """A channel whose notify raises a plain exception, not a ChannelError (a bug, a library error)."""

    name = "exploding"

    def notify(self, request, event):  # type: ignore[no-untyped-def]
        raise RuntimeError("channel bug")
