"""Test settings: the real settings, with fast hashing, in-memory email and inline tasks."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# The audit log's keys (SPEC §18), in the environment so the subprocesses of real-worker tests share them.
os.environ.setdefault("HITL_AUDIT_KEY", "test-audit-hmac-key-not-for-production")
os.environ.setdefault("HITL_AUDIT_SIGNING_KEY", "LiXbC1A6fIlktl-AfiMtCLEZZcTuZNkBR7KCIK11gJg")

from hitl.settings import *  # noqa: E402,F403
from hitl.settings import DATABASES, Q_CLUSTER  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests run background tasks inline; the real-worker tests start `qcluster` themselves.
Q_CLUSTER["sync"] = True
HITL_TASKS_SYNC = True
HITL_BASE_URL = "https://hitl.example.test"
ANYMAIL = {
    "WEBHOOK_SECRET": "esp-user:esp-secret-password",
    "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key",
    "POSTMARK_SERVER_TOKEN": "test",
}
HITL_INBOUND_DOMAIN = "reply.hitl.example.test"
# A fixed Fernet key (tests are not DEBUG, so nothing is derived); the real-worker tests hand the same
# key to their `qcluster` subprocess.
HITL_ENCRYPTION_KEYS = ["x3u4zmuXqSDg4c6ALkMFbp5bxBeAVPuxNOQXvVtvc1M="]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not DATABASES["default"]["TEST"]["NAME"]:
    # A file, not :memory:, so a real `qcluster` subprocess can open the test database (one file per
    # test process: pytest-xdist workers never share it). pytest-django deletes it at the end.
    DATABASES["default"]["TEST"]["NAME"] = os.path.join(tempfile.gettempdir(), f"hitl-test-{os.getpid()}.sqlite3")
# Pages render `{% static %}` without a collectstatic run: plain names, and WhiteNoise reads the sources
# (tests/production/ collects into a temporary STATIC_ROOT and checks the hashed, compressed files).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
