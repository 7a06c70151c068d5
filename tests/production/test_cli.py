"""The `hitl` command (SPEC §17): `--version`, any management command, `hitl worker`'s dispatch, and
`hitl serve` as a real gunicorn with threads: long-polls do not hold the process, and WhiteNoise serves
the collected, hashed, compressed static files with DEBUG off."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import hitl
from hitl.cli import worker_command
from tests.production.support import PRODUCTION, ROOT, environment
from tests.production.support import hitl as run_hitl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestCommand:
    def test_it_prints_the_version(self) -> None:
        done = run_hitl("--version", values={})
        assert (done.returncode, done.stdout.strip()) == (0, f"hitl {hitl.__version__}")

    def test_it_runs_any_management_command_as_hitl(self) -> None:
        done = run_hitl("help", values={"DEBUG": "1"})
        assert done.returncode == 0
        assert "Type 'hitl help <subcommand>'" in done.stdout and "process_inbound_email" in done.stdout

    def test_worker_is_the_worker_command(self) -> None:
        ours = run_hitl("worker", "--help", values={"DEBUG": "1"})
        direct = subprocess.run(
            [sys.executable, "manage.py", worker_command(), "--help"],
            env=environment({"DEBUG": "1"}),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert ours.returncode == 0
        assert ours.stdout.startswith(f"usage: hitl {worker_command()} ")
        words = " ".join(ours.stdout.split()).replace("usage: hitl ", "usage: manage.py ", 1)
        assert words == " ".join(direct.stdout.split())

    def test_serve_offers_its_flags(self) -> None:
        done = run_hitl("serve", "--help", values={"DEBUG": "1"})
        for flag in ("--bind", "--workers", "--threads", "--no-collectstatic"):
            assert flag in done.stdout


@pytest.fixture(scope="class")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """`hitl serve` on a migrated SQLite database: (base URL, API key, the process)."""
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    values = {
        **PRODUCTION,
        "HITL_BASE_URL": f"http://127.0.0.1:{port}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "HITL_VAR_DIR": str(tmp),
        "HITL_TASKS_SYNC": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    assert run_hitl("migrate", "--noinput", values=values, timeout=180).returncode == 0
    made = run_hitl("create_deployment", "--name", "Serve", "--creator-email", "ops@example.com", values=values)
    deployment = made.stdout.strip().splitlines()[-1]
    key = run_hitl("create_api_key", "--deployment", deployment, values=values).stdout.strip().splitlines()[-1]
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", "from hitl.cli import main; main()", "serve", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--threads", "4"],
        env=environment(values),
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/version/", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        pytest.fail((tmp / "serve.log").read_text())
    yield base, key, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


class TestServe:
    def test_it_answers_while_long_polls_wait(self, served: tuple[str, str, subprocess.Popen[bytes]]) -> None:
        """One process with 4 threads: two long-polls hold two threads, the login page still answers."""
        base, key, _ = served
        auth = {"Authorization": f"Bearer {key}"}
        created = httpx.post(
            f"{base}/api/v1/requests/", headers=auth, json={"message": "Wait?", "emit_options": ["yes"]}, timeout=10
        ).json()
        waits = [
            threading.Thread(
                target=httpx.get,
                args=(f"{base}/api/v1/requests/{created['id']}/result/?wait=6",),
                kwargs={"headers": auth, "timeout": 15},
            )
            for _ in range(2)
        ]
        for thread in waits:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        page = httpx.get(f"{base}/accounts/login/", timeout=10)
        elapsed = time.monotonic() - started
        for thread in waits:
            thread.join()
        assert page.status_code == 200 and elapsed < 2, elapsed

    def test_it_serves_hashed_compressed_static_files(self, served: tuple[str, str, subprocess.Popen[bytes]]) -> None:
        base = served[0]
        html = httpx.get(f"{base}/accounts/login/", timeout=10).text
        sheet = next(p for p in html.split('"') if p.startswith("/static/hitl/app.") and p.endswith(".css"))
        assert sheet != "/static/hitl/app.css"  # the manifest's hashed name
        css = httpx.get(f"{base}{sheet}", headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert css.headers["content-encoding"] == "gzip"
        assert "immutable" in css.headers["cache-control"]
        assert css.text == (ROOT / "static" / "hitl" / "app.css").read_text()
        admin = httpx.get(f"{base}/static/admin/css/base.css", timeout=10)
        assert admin.status_code == 200 and admin.headers["content-type"].startswith("text/css")

    def test_it_stops_on_sigterm(self, served: tuple[str, str, subprocess.Popen[bytes]]) -> None:
        proc = served[2]
        os.kill(proc.pid, signal.SIGTERM)  # systemd's stop (KillMode=mixed): the master alone
        assert proc.wait(timeout=40) == 0


def test_the_collected_files_are_in_the_var_dir(tmp_path: Path) -> None:
    done = run_hitl("collectstatic", "--noinput", values={**PRODUCTION, "HITL_VAR_DIR": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "staticfiles" / "staticfiles.json").is_file()  # a checkout: <var>/staticfiles
    assert list((tmp_path / "staticfiles" / "hitl").glob("app.*.css.gz"))


class TestServeBehindATlsProxy:
    def test_it_redirects_plain_http_and_sends_hsts_over_the_proxys_https(self, tmp_path: Path) -> None:
        """HITL_BASE_URL https + HITL_BEHIND_PROXY=1, as docs/deploy.md configures it behind nginx."""
        port = free_port()
        values = {
            **PRODUCTION,
            "ALLOWED_HOSTS": "hitl.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "HITL_VAR_DIR": str(tmp_path),
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", "from hitl.cli import main; main()", "serve", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", "1", "--threads", "2"],
            env=environment(values),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            base, host = f"http://127.0.0.1:{port}", {"Host": "hitl.example.com"}
            deadline = time.monotonic() + 60
            while True:
                try:
                    plain = httpx.get(f"{base}/api/v1/version/", headers=host, timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "hitl serve did not start"
                    time.sleep(0.3)
            assert plain.status_code == 301
            assert plain.headers["location"] == "https://hitl.example.com/api/v1/version/"
            proxied = httpx.get(f"{base}/accounts/login/", headers={**host, "X-Forwarded-Proto": "https"}, timeout=5)
            assert proxied.status_code == 200
            assert proxied.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
            cookie = proxied.headers["set-cookie"]
            assert "csrftoken=" in cookie and "Secure" in cookie
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
