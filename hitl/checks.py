"""System checks (`manage.py check`, and every runserver/qcluster start; the database ones with
`migrate` and `check --database default`)."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from hitl.lib import production


@checks.register(checks.Tags.security, deploy=False)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for index, key in enumerate(settings.HITL_ENCRYPTION_KEYS):
        try:
            Fernet(key.encode())
        except ValueError:
            messages.append(
                checks.Error(
                    f"HITL_ENCRYPTION_KEYS: key #{index + 1} is not a valid Fernet key (32 url-safe base64 bytes).",
                    id="hitl.E001",
                )
            )
    if not settings.HITL_ENCRYPTION_KEYS and not settings.DEBUG:
        messages.append(
            checks.Warning(
                "HITL_ENCRYPTION_KEYS is not set: webhook secrets cannot be created or used.",
                hint='Generate one: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"',
                id="hitl.W001",
            )
        )
    return messages


@checks.register(checks.Tags.security, deploy=False)
def check_inbound_webhook_secret(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Anymail's inbound webhooks take email replies that answer requests: never without a secret."""
    if settings.DEBUG or settings.ANYMAIL.get("WEBHOOK_SECRET"):
        return []
    return [
        checks.Error(
            "ANYMAIL_WEBHOOK_SECRET is not set: the inbound email webhook would accept anyone's POST.",
            hint='Set ANYMAIL_WEBHOOK_SECRET="user:long-random-password" and use it in your ESP\'s inbound URL.',
            id="hitl.E002",
        )
    ]


@checks.register(checks.Tags.security, deploy=False)
def check_base_url(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.DEBUG or settings.HITL_BASE_URL:
        return []
    return [
        checks.Error(
            "HITL_BASE_URL is not set: every link handed out (magic links, callback URLs) would be wrong.",
            hint="Set HITL_BASE_URL to the public URL reviewers open, e.g. https://hitl.example.com",
            id="hitl.E003",
        )
    ]


def missing_production_settings() -> list[str]:
    """The production variables (hitl.lib.production.REQUIRED) this process lacks; none under DEBUG."""
    if settings.DEBUG:
        return []
    present = {
        "SECRET_KEY": bool(settings.SECRET_KEY),
        "HITL_BASE_URL": bool(settings.HITL_BASE_URL),
        "HITL_ENCRYPTION_KEYS": bool(settings.HITL_ENCRYPTION_KEYS),
        "ANYMAIL_WEBHOOK_SECRET": bool(settings.ANYMAIL.get("WEBHOOK_SECRET")),
    }
    return [name for name in production.REQUIRED if not present[name]]


def require_production_settings() -> None:
    """Called where a long-running process starts (hitl/wsgi.py, `hitl serve`, `hitl worker`): system
    checks only run in management commands, and gunicorn runs none."""
    missing = missing_production_settings()
    if missing:
        raise ImproperlyConfigured(production.refusal(missing))


@checks.register(checks.Tags.security, deploy=False)
def check_audit_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """SPEC §18: the audit log's keys live outside the database; without them it is weaker, not broken."""
    from audit.lib.keys import AuditKeyError, signing_key

    messages: list[checks.CheckMessage] = []
    if settings.HITL_AUDIT_SIGNING_KEY:
        try:
            signing_key()
        except AuditKeyError as exc:
            messages.append(checks.Error(str(exc), id="hitl.E005"))
    if settings.DEBUG:
        return messages
    if not settings.HITL_AUDIT_KEY:
        messages.append(
            checks.Warning(
                "HITL_AUDIT_KEY is not set: audit hashes are keyed with a key derived from SECRET_KEY, so rotating "
                "SECRET_KEY breaks the audit log's verification.",
                hint="Set HITL_AUDIT_KEY to a long random string (docs/deploy.md, Audit keys and checkpoints).",
                id="hitl.W002",
            )
        )
    if not settings.HITL_AUDIT_SIGNING_KEY:
        messages.append(
            checks.Warning(
                "HITL_AUDIT_SIGNING_KEY is not set: no signed audit checkpoints, so a cut tail or a restored old "
                "backup of the audit log goes unnoticed.",
                hint="Generate one: manage.py audit_checkpoint --generate-key",
                id="hitl.W003",
            )
        )
    return messages


@checks.register(checks.Tags.security, deploy=False)
def check_smtp_tls(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django only finds out when the first email is sent, in a worker, long after the start."""
    if not (settings.EMAIL_USE_TLS and settings.EMAIL_USE_SSL):
        return []
    return [
        checks.Error(
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: SMTP uses one of them (STARTTLS or implicit TLS).",
            hint="Port 587 usually takes EMAIL_USE_TLS=1, port 465 EMAIL_USE_SSL=1.",
            id="hitl.E004",
        )
    ]


@checks.register(checks.Tags.database)
def check_rollups_built(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """SPEC §19: an install upgraded to the analytics rollups without `analytics_rebuild` shows zeros for
    every request made before the upgrade. A database check (`migrate` runs it, or `manage.py check
    --database default`): it reads two rows, and before the rollups' migration there is no table to read."""
    from django.db import DatabaseError

    from hitl.models import HITLRequest, Rollup

    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        try:
            missing = not Rollup.objects.using(alias).exists() and HITLRequest.objects.using(alias).exists()
        except DatabaseError:  # not migrated yet
            continue
        if missing:
            messages.append(
                checks.Warning(
                    f"The analytics rollups of database {alias!r} are empty but it holds requests: the analytics "
                    "count none of them.",
                    hint="Run `manage.py analytics_rebuild` once (SPEC §19); the services keep the rollups after that.",
                    id="hitl.W004",
                )
            )
    return messages


@checks.register(checks.Tags.database)
def check_autovacuum(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Issue 21: every create and every answer updates the same few analytics rollup rows (today's, this
    week's, this month's). Without autovacuum their dead versions pile up and each request costs
    PostgreSQL more than the last (tests/bench/RESULTS.md: its CPU per create tripled over 3,000
    requests, and one VACUUM brought it back). A database check, as hitl.W004."""
    from django.db import DatabaseError, connections

    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW autovacuum")
                (setting,) = cursor.fetchone()
        except DatabaseError:
            continue
        if setting == "off":
            messages.append(
                checks.Warning(
                    f"Autovacuum is off on the PostgreSQL server of database {alias!r}: the analytics rollup "
                    "rows every request updates keep their dead versions, and creates and answers slow down.",
                    hint="Turn it on (`autovacuum = on` in postgresql.conf, the default), or VACUUM the "
                    "hitl_rollup* tables from cron every minute.",
                    id="hitl.W005",
                )
            )
    return messages
