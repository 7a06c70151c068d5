"""The production stack for the worker benchmarks (issue 8): a scratch PostgreSQL database, Redis as the
django-q2 broker, real `manage.py qcluster` subprocesses and, when asked, a gunicorn server.

Every process, this one included, runs the production settings module (`hitl.settings`) configured
through environment variables the way ops would (DEBUG=0, SECRET_KEY, ANYMAIL_WEBHOOK_SECRET, ...), as
tests/qcluster.py does. Email goes to files (`filebased` backend): no network.

Also: the machine description and the Markdown writer the three scripts share.
"""

from __future__ import annotations

import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "bench" / "results"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432"
SECRET_KEY = "bench-workers-secret-key-not-for-production-0123456789"
ANYMAIL_SECRET = "hitl:bench-inbound-secret"
# A fixed Fernet key (32 url-safe base64 bytes) for webhook secrets at rest.
ENCRYPTION_KEY = "YmVuY2gtd29ya2Vycy1mZXJuZXQta2V5LTMyYnl0ZXM="


class Stack:
    def __init__(self, *, database: str, redis_db: int, workers: int, port: int | None = None, **extra: str):
        self.database = database
        self.database_url = f"{PG_ADMIN_URL}/{database}"
        self.redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        self.workers = workers
        self.port = port
        self.tmp = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
        self.mail_dir = self.tmp / "mail"
        self.mail_dir.mkdir()
        self.extra = extra
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.port else "http://127.0.0.1:8000"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HITL_", "ANYMAIL_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="tests.bench.settings",
            DEBUG="0",
            SECRET_KEY=SECRET_KEY,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            HITL_ENCRYPTION_KEYS=ENCRYPTION_KEY,
            HITL_EGRESS_ALLOWED_HOSTS="127.0.0.1",
            HITL_BASE_URL=self.base_url,
            HITL_INBOUND_DOMAIN="reply.bench.localhost",
            ANYMAIL_WEBHOOK_SECRET=ANYMAIL_SECRET,
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            EMAIL_FILE_PATH=str(self.mail_dir),
            HITL_Q_WORKERS=str(self.workers),
            HITL_TASKS_SYNC="0",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra)
        env.update(overrides)
        return env

    # --- database, broker, Django in this process ---------------------------------------------------

    def create_database(self) -> None:
        self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._admin_sql(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput")
        self.flush_redis()

    def drop_database(self) -> None:
        from django.db import connections

        connections.close_all()
        self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.flush_redis()

    def _admin_sql(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{PG_ADMIN_URL}/postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, check=False
        )
        if out.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def setup_django(self) -> None:
        """Configure this process like the workers (same settings, same database and broker)."""
        os.environ.update(self.env())
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()

    # --- processes -----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], **env: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def start_qcluster(self, timeout: float = 60.0, *, probe: bool = True) -> float:
        """Start `manage.py qcluster`; return seconds until it ran a probe task through Redis (the
        probe waits behind whatever is queued: skip it when a backlog is waiting)."""
        started = time.monotonic()
        self._spawn("qcluster", [sys.executable, "manage.py", "qcluster"])
        if not probe:
            return 0.0
        from django_q.tasks import async_task, fetch

        task_id = async_task("builtins.str", "pong")
        task = fetch(task_id, wait=int(timeout * 1000))
        if task is None or task.result != "pong":
            raise RuntimeError(f"qcluster did not start:\n{self.log('qcluster')}")
        return time.monotonic() - started

    def start_server(self, workers: int = 2, timeout: float = 30.0) -> None:
        """gunicorn on hitl.wsgi, as in production; waits until it answers."""
        assert self.port
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        argv = [gunicorn, "hitl.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", str(workers), "--access-logfile", "-"]
        self._spawn("gunicorn", argv)
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base_url}/accounts/login/", timeout=2).read()  # noqa: S310 (http only)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start:\n{self.log('gunicorn')}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


# --- the report ---------------------------------------------------------------------------------------


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def machine() -> str:
    cpu = _lscpu()
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    import django
    import django_q
    import psycopg
    import redis

    versions = [f"CPython {platform.python_version()}", f"Django {django.get_version()}"]
    versions.append(f"django-q2 {getattr(django_q, '__version__', None) or _dist_version('django-q2')}")
    versions += [f"psycopg {psycopg.__version__}", f"redis-py {redis.__version__}"]
    try:
        import psycopg as pg

        with pg.connect(f"{PG_ADMIN_URL}/postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
            versions.append(f"PostgreSQL {row[0].split()[0] if row else '?'}")
        info = redis.Redis.from_url("redis://127.0.0.1:6379/0").info("server")
        versions.append(f"Redis {info.get('redis_version', '?')}")
    except Exception:  # noqa: BLE001, S110 (a description, not a check)
        pass
    model = cpu.get("Model name", platform.processor() or "?")
    cores = cpu.get("CPU(s)", str(os.cpu_count()))
    virt = f", {cpu['Hypervisor vendor']} guest" if cpu.get("Hypervisor vendor") else ""
    return (
        f"{cores} vCPU {model}{virt}, {ram}, Linux {platform.release()} {platform.machine()}; "
        + ", ".join(versions)
        + ", all on the same machine."
    )


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def command_line() -> str:
    return " ".join(shlex.quote(arg) for arg in [".venv/bin/python", *sys.argv])


def write_section(name: str, title: str, body: str, *, append: bool = False) -> Path:
    """Write (or append) a Markdown section to tests/bench/results/<name>.md, with the machine, the date and
    the exact command on top."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    head = (
        f"## {title}\n\n"
        f"**Machine.** {machine()}\n"
        f"**Date.** {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.\n\n"
        f"**Command.**\n\n```bash\n{command_line()}\n```\n\n"
    )
    text = head + body.strip() + "\n"
    if append and path.exists():
        text = path.read_text().rstrip() + "\n\n" + text
    path.write_text(text)
    return path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
