"""The systemd units shipped in docs/systemd/ (docs/deploy.md installs them): they run the installed
`hitl` with the documented environment file, stop the way the processes expect, pass
`systemd-analyze verify`, and the documented environment file is a working production configuration."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.production.support import FERNET, PRODUCTION, ROOT, SECRET, python

UNITS = ROOT / "docs" / "systemd"
HITL = "/opt/hitl/bin/hitl"
ENV_FILE = "/etc/hitl/hitl.env"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and their keys (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def env_file(text: str) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


class TestUnits:
    @pytest.mark.parametrize("name, command", [("hitl-web.service", "serve"), ("hitl-worker@.service", "worker")])
    def test_it_runs_the_installed_hitl_with_the_environment_file(self, name: str, command: str) -> None:
        service = unit(name)["Service"]
        assert service["ExecStart"] == [f"{HITL} {command}"]
        assert service["EnvironmentFile"] == [ENV_FILE]
        assert service["User"] == ["hitl"] and service["Restart"] == ["on-failure"]
        assert unit(name)["Install"]["WantedBy"] == ["multi-user.target"]

    def test_the_web_unit_outlasts_gunicorns_graceful_stop(self) -> None:
        from hitl import gunicorn_conf

        service = unit("hitl-web.service")["Service"]
        assert service["KillMode"] == ["mixed"]  # SIGTERM to the master alone, SIGKILL to what remains
        assert gunicorn_conf.graceful_timeout < seconds(service["TimeoutStopSec"][0]) <= 90
        assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]  # gunicorn sd_notify

    def test_the_worker_unit_gives_the_clean_stop_its_time(self) -> None:
        service = unit("hitl-worker@.service")["Service"]
        assert service["KillMode"] == ["mixed"]
        assert 10 < seconds(service["TimeoutStopSec"][0]) <= 60  # the worker stops within 10 s (SPEC §17)

    @pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
    def test_systemd_accepts_them(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` on the units, with the paths that only exist on a server replaced."""
        stub = tmp_path / "hitl"
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        (tmp_path / "hitl.env").write_text((UNITS / "hitl.env.example").read_text())
        for name in ("hitl-web.service", "hitl-worker@.service"):
            text = (UNITS / name).read_text().replace(HITL, str(stub)).replace(ENV_FILE, str(tmp_path / "hitl.env"))
            (tmp_path / name.replace("@", "@1" if "@" in name else "")).write_text(text)
        units = [str(tmp_path / "hitl-web.service"), str(tmp_path / "hitl-worker@1.service")]
        done = subprocess.run(
            ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60, check=False
        )
        # It warns (exit 0) about values it ignores, so any line on stderr is a problem.
        assert (done.returncode, done.stderr.strip()) == (0, "")


class TestEnvironmentFile:
    def test_it_documents_every_required_variable(self) -> None:
        from hitl.lib.production import REQUIRED

        assert set(REQUIRED) <= set(env_file((UNITS / "hitl.env.example").read_text()))

    def test_filled_in_it_is_a_clean_production_configuration(self) -> None:
        values = env_file((UNITS / "hitl.env.example").read_text())
        values |= {"SECRET_KEY": SECRET, "HITL_ENCRYPTION_KEYS": FERNET, "ANYMAIL_WEBHOOK_SECRET": "esp:pw"}
        values |= {k: PRODUCTION[k] for k in ("HITL_AUDIT_KEY", "HITL_AUDIT_SIGNING_KEY")}
        done = python(
            "import sys; from django.core.management import execute_from_command_line; "
            "execute_from_command_line(['hitl', 'check', '--deploy', '--fail-level', 'WARNING'])",
            values,
        )
        assert done.returncode == 0, done.stderr
        assert "no issues" in done.stdout

    def test_deploy_md_installs_these_units_and_this_file(self) -> None:
        guide = (ROOT / "docs" / "deploy.md").read_text()
        for needle in ("docs/systemd/hitl-web.service", "docs/systemd/hitl-worker@.service", ENV_FILE, HITL):
            assert needle in guide
