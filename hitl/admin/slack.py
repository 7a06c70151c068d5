"""Slack settings in the admin (deployments and routing rules): a write-only, encrypted bot token and
signing secret (one Slack app: set both, or neither), the channel, and the "Test Slack" action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hitl.channels import slack
from hitl.channels.base import ChannelError
from hitl.lib import crypto


class SlackSettingsForm(forms.ModelForm):
    """Adds write-only fields for the Slack app's bot token and signing secret: encrypted on save, never
    shown again; empty keeps the current value."""

    slack_bot_token_input = forms.CharField(
        label="Slack bot token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The app's Bot User OAuth Token (xoxb-…); stored encrypted. Leave empty to keep the current one.",
    )
    slack_signing_secret_input = forms.CharField(
        label="Slack signing secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Basic Information → App Credentials → Signing Secret; stored encrypted.",
    )
    clear_slack_app = forms.BooleanField(label="Remove the Slack bot token and signing secret", required=False)

    def clean_slack_bot_token_input(self) -> str:
        token = self.cleaned_data.get("slack_bot_token_input") or ""
        if token and not slack.TOKEN_RE.match(token):
            raise forms.ValidationError("That does not look like a bot token (xoxb-…).")
        return token

    def clean_slack_signing_secret_input(self) -> str:
        secret = self.cleaned_data.get("slack_signing_secret_input") or ""
        if secret and not slack.SECRET_RE.match(secret):
            raise forms.ValidationError("That does not look like a signing secret (letters and digits).")
        return secret

    def clean_slack_channel_id(self) -> str:
        channel = (self.cleaned_data.get("slack_channel_id") or "").strip()
        if channel and not slack.CHANNEL_RE.match(channel):
            raise forms.ValidationError("A channel id such as C0123456789 (channel details → About), not its name.")
        return channel

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("clear_slack_app"):
            return cleaned
        token = bool(cleaned.get("slack_bot_token_input") or self.instance.slack_bot_token)
        secret = bool(cleaned.get("slack_signing_secret_input") or self.instance.slack_signing_secret)
        if token != secret:
            # Presses are verified with the secret of the app that posted: one without the other is no app.
            self.add_error(
                "slack_signing_secret_input" if token else "slack_bot_token_input",
                "A Slack app needs both its bot token and its signing secret.",
            )
        return cleaned

    def save(self, commit: bool = True) -> Any:
        if self.cleaned_data.get("clear_slack_app"):
            self.instance.slack_bot_token = ""
            self.instance.slack_signing_secret = ""
        else:
            if self.cleaned_data.get("slack_bot_token_input"):
                self.instance.slack_bot_token = crypto.encrypt(self.cleaned_data["slack_bot_token_input"])
            if self.cleaned_data.get("slack_signing_secret_input"):
                self.instance.slack_signing_secret = crypto.encrypt(self.cleaned_data["slack_signing_secret_input"])
        return super().save(commit)


SLACK_FIELDS = ("slack_channel_id", "slack_bot_token_input", "slack_signing_secret_input", "clear_slack_app", "slack")


def slack_status(obj: Any) -> str:
    if obj is None or obj.pk is None:
        return "-"
    app = "a Slack app is set" if obj.slack_bot_token and obj.slack_signing_secret else "no Slack app"
    channel = f"channel {obj.slack_channel_id}" if obj.slack_channel_id else "no channel"
    return f"{app}, {channel}."


@admin.action(
    description="Test Slack: post a test message to the selected deployments' channels", permissions=["change"]
)
def test_slack(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    for deployment in queryset:
        try:
            done = slack.post_test_message(deployment)
        except ChannelError as exc:
            messages.error(request, f"{deployment}: {exc.detail}")
            continue
        messages.success(
            request, f"{deployment}: {done}. Interactivity request URL: {slack.interactions_url(deployment.pk)}"
        )
