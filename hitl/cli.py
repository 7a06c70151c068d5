"""The `hitl` command (installed by the distribution): `hitl <management command>` as `manage.py`,
`hitl serve` (gunicorn, hitl.management.commands.serve), `hitl worker` (the task worker) and
`hitl --version`. DJANGO_SETTINGS_MODULE defaults to hitl.settings."""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec

from hitl import __version__

# The long-running processes: they refuse to start without the production settings (hitl.checks).
SERVERS = ("serve", "worker", "qcluster")


def worker_command() -> str:
    """`hitl worker` is the `worker` management command (a qcluster that stops cleanly); a server
    without it runs django-q2's own `qcluster`."""
    return "worker" if find_spec("hitl.management.commands.worker") else "qcluster"


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        print(f"hitl {__version__}")
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")
    if args[:1] == ["worker"]:
        args[0] = worker_command()
    if args[:1] and args[0] in SERVERS and not {"-h", "--help"} & set(args):
        import django
        from django.core.exceptions import ImproperlyConfigured

        try:
            django.setup()
            from hitl.checks import require_production_settings

            require_production_settings()
        except ImproperlyConfigured as exc:
            sys.stderr.write(f"hitl: {exc}\n")
            sys.exit(2)

    from django.core.management import execute_from_command_line

    execute_from_command_line(["hitl", *args])


if __name__ == "__main__":
    main()
