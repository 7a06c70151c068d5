"""The WSGI application gunicorn loads (`hitl serve`). It refuses to load in production without the
required settings: gunicorn runs no system checks, so without this it would serve half-configured."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
application = get_wsgi_application()

from hitl.checks import require_production_settings  # noqa: E402  (needs the apps loaded)

require_production_settings()
