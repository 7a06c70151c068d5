"""Settings, read from environment variables. Every variable here is in the README's table."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


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
if not SECRET_KEY:
    # Refuse to run without a secret in production: every token and magic link is signed with it.
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be set (or DEBUG=1 for development).")
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
        "DIRS": [BASE_DIR / "templates"],
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
        env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
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
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_str("STATIC_ROOT") or str(BASE_DIR / "staticfiles")

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
    Q_CLUSTER["poll"] = 1

# --- email ---------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    # Under DEBUG, sent mail lands in the dev mailbox (/dev/mailbox/) where it can be answered.
    "hitl.lib.dev_mailbox.DevMailboxBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH") or str(BASE_DIR / "var" / "mail")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "hitl@localhost")
ANYMAIL = {key[len("ANYMAIL_") :]: value for key, value in os.environ.items() if key.startswith("ANYMAIL_")}

# --- HITL ----------------------------------------------------------------------------------------
HITL_BASE_URL = env_str("HITL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
HITL_INBOUND_DOMAIN = env_str("HITL_INBOUND_DOMAIN", "hitl.localhost")
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
HITL_MAX_WAIT_SECONDS = 60
HITL_MAX_WAITS_PER_KEY = env_int("HITL_MAX_WAITS_PER_KEY", 4)
# Telegram's Bot API; tests point it at a local fake (which must then be in HITL_EGRESS_ALLOWED_HOSTS).
HITL_TELEGRAM_API_BASE = env_str("HITL_TELEGRAM_API_BASE", "https://api.telegram.org").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
