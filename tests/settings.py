"""Test settings: the real settings, with fast hashing, in-memory email and inline tasks."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from hitl.settings import *  # noqa: E402,F403
from hitl.settings import Q_CLUSTER  # noqa: E402

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
