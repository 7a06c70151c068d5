"""Benchmark settings: production settings plus the baseline view (`/bench/baseline/`).

DJANGO_SETTINGS_MODULE=tests.bench.settings DATABASE_URL=postgres://… REDIS_URL=redis://… gunicorn hitl.wsgi
"""

from hitl.settings import *  # noqa: F403
from hitl.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.bench"]
ROOT_URLCONF = "tests.bench.urls"
