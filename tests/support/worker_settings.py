"""Settings of the `qcluster` subprocess in the flow fault tests: production settings, plus the test
flows (registered on import) and an email backend that sends nothing."""

from hitl.settings import *  # noqa: F403
from tests.support import sample_flows  # noqa: F401  (registers the test flows in the worker)

EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
