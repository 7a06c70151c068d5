"""`hitl serve`: the production web server, gunicorn with threads and the shipped configuration
(hitl/gunicorn_conf.py). Collects the static files first (WhiteNoise serves them), then becomes
gunicorn (exec), so systemd's signals reach gunicorn's master directly."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hitl.checks import require_production_settings


class Command(BaseCommand):
    help = "Serve the application with gunicorn (threads); collects static files first."
    requires_system_checks: list[str] = []  # run below, after the clearer production refusal

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", help="address:port or unix:/path (default HITL_BIND or 127.0.0.1:8000)")
        parser.add_argument("--workers", type=int, help="processes (default HITL_WEB_WORKERS or 2)")
        parser.add_argument("--threads", type=int, help="threads per process (default HITL_WEB_THREADS or 8)")
        parser.add_argument(
            "--no-collectstatic", action="store_true", help="skip collectstatic (STATIC_ROOT is already filled)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            require_production_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.check(display_num_errors=False)
        if not options["no_collectstatic"]:
            call_command("collectstatic", interactive=False, verbosity=0)
        argv = [sys.executable, "-m", "gunicorn", "--config", "python:hitl.gunicorn_conf"]
        for flag in ("bind", "workers", "threads"):
            if options[flag] is not None:
                argv += [f"--{flag}", str(options[flag])]
        argv.append("hitl.wsgi:application")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)  # noqa: S606  (a fixed argv, no shell)
