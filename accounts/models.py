"""Organizations, deployments (with their HITL settings), and API keys."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from hitl.lib import crypto
from hitl.lib.addresses import email_list_error


class Organization(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """A deployed flow (or group of flows) with its own HITL configuration (SPEC §1, §5).

    RBAC is per deployment, through django-guardian object permissions named in Meta.permissions.
    """

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="deployments")
    name = models.CharField(max_length=200)
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_deployments")
    created_at = models.DateTimeField(auto_now_add=True)
    config_version = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Moves on whenever its routing rules or webhooks change: processes cache them by it.",
    )

    # HITL settings
    email_notifications = models.BooleanField(default=True, help_text="Send emails when feedback is requested.")
    sla_target_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Target response time; empty turns SLA tracking off."
    )
    auto_response_enabled = models.BooleanField(default=False)
    auto_response_timeout_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes to wait before the default outcome is applied."
    )
    auto_response_default_outcome = models.CharField(
        max_length=100, blank=True, help_text="Must be one of the emit options the requests will carry."
    )
    auto_response_emit_options = models.JSONField(
        default=list,
        blank=True,
        help_text="The emit options this deployment's review points use, e.g. "
        '["approved", "rejected"]; the default outcome is validated against them.',
    )
    reminder_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Remind the assignee by email after this many minutes (empty: never)."
    )
    escalation_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Reassign to the next email of the escalation chain after this many minutes."
    )
    escalation_emails = models.JSONField(
        default=list,
        blank=True,
        help_text='The escalation chain, in order, e.g. ["lead@example.com", "head@example.com"].',
    )
    link_ttl_seconds = models.PositiveIntegerField(
        default=7 * 24 * 3600, help_text="Default lifetime of magic links sent for this deployment's requests."
    )
    # Telegram (SPEC §4): requests created with channel=telegram go to this chat through this bot.
    telegram_chat_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="Chat that gets requests sent with channel=telegram: a numeric id (groups start with -100) "
        "or @channelname. Only button presses from this chat are accepted.",
    )
    telegram_bot_token = crypto.EncryptedTextField(blank=True, help_text="Encrypted at rest; set in the admin.")
    # Slack (SPEC §16): requests created with channel=slack are posted to this channel by this app's bot.
    slack_channel_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="Channel that gets requests sent with channel=slack, e.g. C0123456789 (invite the app's bot "
        "to it). Only presses in this channel are accepted.",
    )
    slack_bot_token = crypto.EncryptedTextField(blank=True, help_text="xoxb-…; encrypted at rest; set in the admin.")
    slack_signing_secret = crypto.EncryptedTextField(
        blank=True, help_text="The Slack app's signing secret; encrypted at rest; set in the admin."
    )

    class Meta:
        unique_together = [("organization", "name")]
        permissions = [
            ("manage_human_feedback", "Configure HITL settings and view all requests"),
            ("respond_to_human_feedback", "Respond to and view assigned requests"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # config_version only moves on through an UPDATE … + 1 (hitl.config_cache.bump): saving a copy
        # read before another process's bump must not write the older number back.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "config_version"
            ]
        super().save(*args, **kwargs)

    @property
    def creator_email(self) -> str:
        return (self.creator.email or "").strip().lower()

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        options = self.auto_response_emit_options or []
        if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
            errors["auto_response_emit_options"] = "A list of non-empty strings."
        # A bad address in the chain would be skipped at run time, escalating to nobody.
        if chain_error := email_list_error(self.escalation_emails):
            errors["escalation_emails"] = chain_error
        if self.auto_response_enabled:
            if not self.auto_response_timeout_minutes:
                errors["auto_response_timeout_minutes"] = "Required when auto-response is enabled."
            if not self.auto_response_default_outcome:
                errors["auto_response_default_outcome"] = "Required when auto-response is enabled."
        if self.auto_response_default_outcome and options and self.auto_response_default_outcome not in options:
            errors["auto_response_default_outcome"] = (
                f"'{self.auto_response_default_outcome}' is not one of the emit options: {', '.join(options)}."
            )
        if errors:
            raise ValidationError(errors)


KEY_PREFIX = "hitl_"


def hash_key(secret: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough (no dictionary to defend against).
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A per-deployment API key. Only its hash is stored; the key is shown once, at creation."""

    class Access(models.TextChoices):
        FULL = "full", "Full (create, answer, cancel)"
        READ = "read", "Read-only"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    access = models.CharField(max_length=8, choices=Access.choices, default=Access.FULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({KEY_PREFIX}{self.prefix}…)"

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """Return (full key, prefix, hash)."""
        prefix = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        return secret, prefix, hash_key(secret)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def label(self) -> str:
        return f"api-key:{self.prefix}"

    def touch(self) -> None:
        """Record use, at most once a minute per key (no write on every request)."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
