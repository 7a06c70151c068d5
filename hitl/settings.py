"""Settings, read from environment variables. Every variable here is in the README's table."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
# A checkout has manage.py beside the packages; an installed wheel (site-packages) does not, and keeps
# its templates and static files under hitl/bundled/ (setup.py maps the top-level folders there).
CHECKOUT = (BASE_DIR / "manage.py").is_file()
BUNDLED_DIR = BASE_DIR if CHECKOUT else Path(__file__).resolve().parent / "bundled"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or ("insecure-dev-key-change-me" if DEBUG else "")
# Earlier SECRET_KEYs, newest first: what they signed (sessions, reply tokens, magic links, callback
# URLs, Telegram secrets and buttons) keeps working until a key is dropped from this list.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
if not SECRET_KEY:
    # Refuse to run without a secret in production: every token and magic link is signed with it. The
    # message names every other missing production variable too, so one try shows the whole list.
    from django.core.exceptions import ImproperlyConfigured

    from hitl.lib import production

    raise ImproperlyConfigured(production.refusal([n for n in production.REQUIRED if not os.environ.get(n)]))
# Where an installed server keeps what it writes (the default SQLite file, collected static files, the
# file email backend's mail): the virtualenv's var/hitl/, so site-packages stays read-only. A checkout
# keeps them in the project, as before.
HITL_VAR_DIR = Path(env_str("HITL_VAR_DIR") or (BASE_DIR if CHECKOUT else Path(sys.prefix) / "var" / "hitl"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "localhost,127.0.0.1")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "anymail",
    "django_q",
    "audit",
    "accounts",
    "hitl",
    "flows",
    "hitl.analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware (WhiteNoise's rule): static files skip the rest of the stack.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "hitl.middleware.ContentSecurityPolicyMiddleware",
    "hitl.middleware.BodyLimitMiddleware",
    "hitl.middleware.RejectNulMiddleware",
    "hitl.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hitl.urls"
WSGI_APPLICATION = "hitl.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BUNDLED_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{HITL_VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so a lost race is a clean loser (409),
    # never "database is locked" half-way through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": env_str("HITL_TEST_SQLITE_NAME") or None}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL's JIT compiles every query its planner prices above `jit_above_cost`; for this app's
    # short, index-driven queries compiling takes longer (60–80 ms) than running them (bench/RESULTS.md).
    # An `options` parameter in DATABASE_URL replaces this.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; links authorise by signed token

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BUNDLED_DIR / "static"]
STATIC_ROOT = env_str("STATIC_ROOT") or str(HITL_VAR_DIR / ("staticfiles" if CHECKOUT else "static"))
# WhiteNoise serves STATIC_ROOT (filled by `collectstatic`, which `hitl serve` runs first) with DEBUG off:
# hashed names cached for a year, gzipped copies. Under DEBUG, runserver serves the sources.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- security: proxy, TLS, headers ----------------------------------------------------------------
# Behind a TLS-terminating proxy (nginx, docs/deploy.md) the proxy says the original scheme in
# X-Forwarded-Proto; only trust that header when told the proxy is there (it must overwrite it).
HITL_BEHIND_PROXY = env_bool("HITL_BEHIND_PROXY", False)
if HITL_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_BASE = env_str("HITL_BASE_URL").rstrip("/")
_HTTPS = _BASE.startswith("https://")
# The form pages post to the origin of HITL_BASE_URL (behind a proxy Django's Host check alone would
# reject them as cross-origin when the scheme differs).
CSRF_TRUSTED_ORIGINS = ["/".join(_BASE.split("/", 3)[:3])] if _BASE else []
if _HTTPS:
    SECURE_SSL_REDIRECT = env_bool("HITL_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("HITL_HSTS_SECONDS", 365 * 24 * 3600)
    # HSTS from hitl.example.com covers only that host and its own subdomains (the inbound mail domain is
    # SMTP, which HSTS does not touch): on by default. Turn both off when HITL_BASE_URL is an apex domain
    # with subdomains still on plain HTTP.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HITL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("HITL_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Health probes come from the proxy or the machine itself over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Every page, the admin and the API docs included: our own scripts only (no inline script anywhere;
# the API docs load their init script from the split Swagger view), inline styles allowed (the admin
# and Swagger UI set them), nothing framed, forms post only to us.
HITL_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "hitl:inbox"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "hitl.lib.api.pagination.CappedLimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": [
        "hitl.lib.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "hitl.lib.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "HITL server API",
    "DESCRIPTION": "Human-in-the-loop review requests for AI workflows.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "hitl.lib.api.schema.add_error_responses",
    ],
}

# --- django-q2: the ORM broker by default, Redis when REDIS_URL is set ---------------------------
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER: dict[str, object] = {
    "name": "hitl",
    "workers": env_int("HITL_Q_WORKERS", 2),
    "timeout": 90,
    "retry": 120,
    "max_attempts": 5,
    "catch_up": False,
    "sync": env_bool("HITL_TASKS_SYNC", False),
    # django-q2 prunes saved successes by loading every saved one (SELECT … FOR UPDATE) on each task:
    # at 1000 that capped the cluster near 20 tasks/s (bench/fanout.py); 100 is as useful to ops.
    "save_limit": 100,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = float(os.environ.get("HITL_Q_POLL") or 1)  # seconds between the ORM broker's polls

# Seconds between the worker's ticker passes (`hitl worker`): deadlines, reminders, escalations and
# webhook retries happen within this of their time. 0 turns the ticker off (the minute sweep remains).
HITL_TICK_SECONDS = float(os.environ.get("HITL_TICK_SECONDS") or 2)

# --- email ---------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    # Under DEBUG, sent mail lands in the dev mailbox (/dev/mailbox/) where it can be answered.
    "hitl.lib.dev_mailbox.DevMailboxBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH") or str(HITL_VAR_DIR / ("var/mail" if CHECKOUT else "mail"))
# SMTP (the default backend with DEBUG off), as in Django.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30) or None
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "hitl@localhost")


def _anymail_value(value: str) -> object:
    """Most Anymail settings are strings (keys, secrets, URLs); a few are booleans or dicts
    (AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS, AMAZON_SES_CLIENT_PARAMS): `true`/`false` and JSON
    objects become those. Nothing else is converted, so a secret made of digits stays a string."""
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


ANYMAIL = {
    key[len("ANYMAIL_") :]: _anymail_value(value) for key, value in os.environ.items() if key.startswith("ANYMAIL_")
}

# --- HITL ----------------------------------------------------------------------------------------
# No default in production (a process refuses to start without it, hitl.checks): a silent 127.0.0.1
# would make every emailed link point at the reviewer's own machine.
HITL_BASE_URL = _BASE or ("http://127.0.0.1:8000" if DEBUG else "")
HITL_INBOUND_DOMAIN = env_str("HITL_INBOUND_DOMAIN", "hitl.localhost")
# Request bodies: HITL_MAX_BODY_BYTES everywhere (Django's 2.5 MB), HITL_INBOUND_MAX_BYTES on the
# Anymail inbound URLs (a reply with a 25 MB attachment arrives base64-encoded in JSON: ~34 MB).
# hitl.middleware.BodyLimitMiddleware enforces both by Content-Length before anything reads a body, so
# Django's own limit is the larger of the two.
HITL_MAX_BODY_BYTES = env_int("HITL_MAX_BODY_BYTES", 2_621_440)
HITL_INBOUND_MAX_BYTES = env_int("HITL_INBOUND_MAX_BYTES", 50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(HITL_MAX_BODY_BYTES, HITL_INBOUND_MAX_BYTES)
HITL_REPLY_TOKEN_TTL = env_int("HITL_REPLY_TOKEN_TTL", 7 * 24 * 3600)
HITL_ENCRYPTION_KEYS = env_list("HITL_ENCRYPTION_KEYS")
HITL_EGRESS_ALLOWED_HOSTS = env_list("HITL_EGRESS_ALLOWED_HOSTS")
HITL_TASKS_SYNC = env_bool("HITL_TASKS_SYNC", False)
HITL_CALLBACK_TTL = env_int("HITL_CALLBACK_TTL", 30 * 24 * 3600)
# Outbound webhooks: the time budget of one attempt (redirects included), the retries a new webhook
# gets (0 = the seed's "no retry"), and the first backoff delay, doubled after every failed attempt.
HITL_WEBHOOK_TIMEOUT = env_int("HITL_WEBHOOK_TIMEOUT", 30)
HITL_WEBHOOK_MAX_RETRIES = env_int("HITL_WEBHOOK_MAX_RETRIES", 5)
HITL_WEBHOOK_RETRY_BASE = env_int("HITL_WEBHOOK_RETRY_BASE", 60)
# A flow run untouched this long is handed to a worker again by `flows-recover-stalled-runs` (its worker
# died mid-step, or its next step or resume was never enqueued). Keep it above the task timeout (90 s):
# a step still running when it is re-enqueued would have its body run twice.
HITL_FLOW_STALLED_AFTER = env_int("HITL_FLOW_STALLED_AFTER", 300)
# Modules that define (and register) server-side flows, imported when the flows app is ready.
HITL_FLOW_MODULES = env_list("HITL_FLOW_MODULES")
HITL_MAX_WAIT_SECONDS = 60
# MCP (SPEC §15): how long `approval_prompt` waits for a reviewer before it denies, and whether the
# reviewer may edit the tool's input (the edit comes back to Claude Code as `updatedInput`).
HITL_MCP_PROMPT_WAIT = env_int("HITL_MCP_PROMPT_WAIT", 300)
HITL_MCP_PROMPT_EDITABLE = env_bool("HITL_MCP_PROMPT_EDITABLE", True)
HITL_MAX_WAITS_PER_KEY = env_int("HITL_MAX_WAITS_PER_KEY", 4)
# Telegram's Bot API; tests point it at a local fake (which must then be in HITL_EGRESS_ALLOWED_HOSTS).
HITL_TELEGRAM_API_BASE = env_str("HITL_TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/")
# Slack's Web API; tests point it at a local fake (which must then be in HITL_EGRESS_ALLOWED_HOSTS).
HITL_SLACK_API_BASE = env_str("HITL_SLACK_API_BASE", "https://slack.com/api").rstrip("/")

# One line per event with time, level, logger and message; HITL_LOG_FORMAT=json for JSON lines.
HITL_LOG_FORMAT = env_str("HITL_LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "hitl.lib.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if HITL_LOG_FORMAT == "json" else "text"}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
# When set, GET /metrics wants `Authorization: Bearer <token>`.
HITL_METRICS_TOKEN = env_str("HITL_METRICS_TOKEN")

# --- the audit log's integrity (SPEC §18, audit.lib.keys) ----------------------------------------
# The HMAC key of every event's hash, and earlier ones (newest first) that events sealed before a
# rotation were keyed with. Unset: derived from SECRET_KEY (hitl.W002 outside DEBUG).
HITL_AUDIT_KEY = env_str("HITL_AUDIT_KEY")
HITL_AUDIT_KEY_FALLBACKS = env_list("HITL_AUDIT_KEY_FALLBACKS")
# The Ed25519 private key (url-safe base64 of its 32 bytes) that signs checkpoints, and the public keys
# of earlier signing keys (so their checkpoints still verify).
HITL_AUDIT_SIGNING_KEY = env_str("HITL_AUDIT_SIGNING_KEY")
HITL_AUDIT_VERIFY_KEYS = env_list("HITL_AUDIT_VERIFY_KEYS")
# Where `audit_checkpoint` sends each checkpoint besides its log line: a file it appends to (one JSON
# line each), and addresses it emails.
HITL_AUDIT_CHECKPOINT_FILE = env_str("HITL_AUDIT_CHECKPOINT_FILE")
HITL_AUDIT_ANCHOR_EMAILS = env_list("HITL_AUDIT_ANCHOR_EMAILS")
# Seconds an event may stay unsealed before `audit_verify` and /readyz call it an alarm.
HITL_AUDIT_UNSEALED_ALARM = env_int("HITL_AUDIT_UNSEALED_ALARM", 60)
