"""Helpers for the production tests: run the real settings module (`hitl.settings`) or the `hitl`
command in a fresh interpreter with exactly the environment an operator's environment file gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FERNET = "x3u4zmuXqSDg4c6ALkMFbp5bxBeAVPuxNOQXvVtvc1M="
SECRET = "k3Q9v-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"

# A complete production environment (docs/deploy.md's environment file, in short).
PRODUCTION = {
    "SECRET_KEY": SECRET,
    "HITL_BASE_URL": "https://hitl.example.com",
    "HITL_ENCRYPTION_KEYS": FERNET,
    "ANYMAIL_WEBHOOK_SECRET": "esp:long-random-password",
    "ALLOWED_HOSTS": "hitl.example.com",
    "HITL_BEHIND_PROXY": "1",
    # The audit log's keys (SPEC §18): without them `check` warns (hitl.W002, hitl.W003).
    "HITL_AUDIT_KEY": "production-audit-hmac-key-0123456789abcdef",
    "HITL_AUDIT_SIGNING_KEY": "rilpMy7syPvBwxJpCl3VxOUbMYmx2pV0DGEQ1Eb1CpI",
}


def environment(values: dict[str, str]) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "hitl.settings", "PYTHONPATH": str(ROOT), **values}


def python(code: str, values: dict[str, str], timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environment(values),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def hitl(*args: str, values: dict[str, str], timeout: int = 60) -> subprocess.CompletedProcess[str]:
    """The `hitl` console script's entry point (hitl.cli:main), as the installed command runs it."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from hitl.cli import main; sys.argv[0] = 'hitl'; main()", *args],
        env=environment(values),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def settings_of(values: dict[str, str], *names: str) -> dict[str, Any]:
    """The named settings as a process with this environment sees them."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}, default=str))"
    )
    done = python(code, values)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
