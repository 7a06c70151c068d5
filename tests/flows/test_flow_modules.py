"""`HITL_FLOW_MODULES`: the user's own flow modules are imported at startup, so their flows register."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

LIST_FLOWS = "from flows.registry import flow_names; print(','.join(flow_names()))"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update(DJANGO_SETTINGS_MODULE="hitl.settings", DEBUG="1", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestFlowModulesSetting:
    def test_it_imports_the_named_modules_at_startup(self) -> None:
        without = manage("shell", "-c", LIST_FLOWS)
        assert without.returncode == 0, without.stderr
        assert "user_own_flow" not in without.stdout.split(",")
        run = manage("shell", "-c", LIST_FLOWS, HITL_FLOW_MODULES="tests.support.user_flows")
        assert run.returncode == 0, run.stderr
        assert "user_own_flow" in run.stdout.strip().split(",")

    def test_a_module_that_cannot_be_imported_stops_startup_with_its_name(self) -> None:
        run = manage("shell", "-c", LIST_FLOWS, HITL_FLOW_MODULES="tests.support.no_such_flows")
        assert run.returncode != 0
        assert "HITL_FLOW_MODULES: cannot import 'tests.support.no_such_flows'" in run.stderr
