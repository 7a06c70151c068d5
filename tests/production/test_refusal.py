"""A production process refuses to start without SECRET_KEY, HITL_BASE_URL, HITL_ENCRYPTION_KEYS and
ANYMAIL_WEBHOOK_SECRET (SPEC §17): at WSGI load (what gunicorn imports), in `hitl serve` and in `hitl
worker`, with a message naming what is missing."""

from __future__ import annotations

import pytest

from tests.production.support import PRODUCTION, hitl, python

REQUIRED = ["SECRET_KEY", "HITL_BASE_URL", "HITL_ENCRYPTION_KEYS", "ANYMAIL_WEBHOOK_SECRET"]


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in PRODUCTION.items() if k != name}


def named_alone(output: str, name: str) -> bool:
    """The refusal names `name` as missing, and none of the variables that are set."""
    line = next((line for line in output.splitlines() if "Refusing to start" in line), "")
    missing = line.split("Refusing to start in production (DEBUG off): ", 1)[-1].split(" is not set", 1)[0]
    return missing == name


class TestRefusalToStart:
    @pytest.mark.parametrize("name", REQUIRED)
    def test_it_refuses_at_wsgi_load(self, name: str) -> None:
        done = python("import hitl.wsgi", without(name))
        assert done.returncode != 0
        assert "ImproperlyConfigured" in done.stderr and named_alone(done.stderr, name), done.stderr[-2000:]

    @pytest.mark.parametrize("name", REQUIRED)
    def test_it_refuses_in_hitl_serve(self, name: str) -> None:
        done = hitl("serve", "--bind", "127.0.0.1:8169", values=without(name))
        assert done.returncode == 2
        assert named_alone(done.stderr, name), done.stderr[-2000:]
        assert "Traceback" not in done.stderr

    @pytest.mark.parametrize("name", REQUIRED)
    def test_it_refuses_in_hitl_worker(self, name: str) -> None:
        done = hitl("worker", values=without(name))
        assert done.returncode == 2
        assert named_alone(done.stderr, name), done.stderr[-2000:]

    def test_it_names_every_missing_variable_at_once(self) -> None:
        done = hitl("serve", values={"ALLOWED_HOSTS": "x"})
        assert "SECRET_KEY, HITL_BASE_URL, HITL_ENCRYPTION_KEYS, ANYMAIL_WEBHOOK_SECRET are not set" in done.stderr

    def test_management_commands_report_a_missing_base_url(self) -> None:
        done = python(
            "from django.core.management import execute_from_command_line as run; run(['x', 'check'])",
            without("HITL_BASE_URL"),
        )
        assert done.returncode != 0 and "hitl.E003" in done.stderr

    def test_it_loads_with_everything_set(self) -> None:
        done = python("import hitl.wsgi; print(callable(hitl.wsgi.application))", PRODUCTION)
        assert done.stdout.strip() == "True", done.stderr

    def test_it_needs_none_of_them_under_debug(self) -> None:
        done = python("import hitl.wsgi; print('loaded')", {"DEBUG": "1"})
        assert done.stdout.strip() == "loaded", done.stderr
