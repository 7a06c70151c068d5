"""Telegram settings in the admin (deployments and routing rules): a write-only, encrypted bot token."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from audit.models import EventType
from audit.services import record_event
from hitl.channels import telegram
from hitl.lib import crypto
from hitl.models import TelegramIdentity


class TelegramTokenForm(forms.ModelForm):
    """Adds a write-only bot token field: the token is encrypted on save and never shown again."""

    telegram_bot_token_input = forms.CharField(
        label="Telegram bot token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="From @BotFather, e.g. 123456789:AA…; stored encrypted. Leave empty to keep the current one.",
    )
    clear_telegram_bot_token = forms.BooleanField(label="Remove the bot token", required=False)

    def clean_telegram_bot_token_input(self) -> str:
        token = self.cleaned_data.get("telegram_bot_token_input") or ""
        if token and not telegram.TOKEN_RE.match(token):
            raise forms.ValidationError("That does not look like a bot token (digits, a colon, then 30+ characters).")
        return token

    def clean_telegram_chat_id(self) -> str:
        chat = (self.cleaned_data.get("telegram_chat_id") or "").strip()
        if chat and not telegram.CHAT_RE.match(chat):
            raise forms.ValidationError("A numeric chat id (e.g. -1001234567890) or @channelname.")
        return chat

    def save(self, commit: bool = True) -> Any:
        if self.cleaned_data.get("clear_telegram_bot_token"):
            self.instance.telegram_bot_token = ""
        elif self.cleaned_data.get("telegram_bot_token_input"):
            self.instance.telegram_bot_token = crypto.encrypt(self.cleaned_data["telegram_bot_token_input"])
        return super().save(commit)


def telegram_status(obj: Any) -> str:
    if obj is None or obj.pk is None:
        return "-"
    token = "a bot token is set" if obj.telegram_bot_token else "no bot token"
    chat = f"chat {obj.telegram_chat_id}" if obj.telegram_chat_id else "no chat"
    return f"{token}, {chat}."


class TelegramIdentityInline(admin.TabularInline):
    """Which approver each Telegram username is (SPEC §13): a press on a request with approvers counts
    only through this table. Changing it needs the TelegramIdentity model permissions."""

    model = TelegramIdentity
    extra = 0
    fields = ("email", "username", "user_id", "created_at")
    readonly_fields = ("created_at",)


def audit_identities(request: HttpRequest, deployment: Any, formset: Any) -> None:
    """Every added, changed or removed Telegram identity is a configuration change in the audit log."""
    changes = [
        *((o, "added") for o in formset.new_objects),
        *((o, "changed") for o, _ in formset.changed_objects),
        *((o, "removed") for o in formset.deleted_objects),
    ]
    for identity, what in changes:
        record_event(
            EventType.CONFIG_CHANGED,
            actor=request.user.get_username(),
            source="admin",
            target=deployment,
            deployment_id=deployment.pk,
            data={"telegram_identity": what, "email": identity.email, "username": identity.username},
        )
