"""A real `manage.py worker` (django-q2's cluster, as `hitl worker` runs it) in a subprocess, on the test
database and the test run's broker (the ORM broker on SQLite, Redis when REDIS_URL is set), for the few
tests only a real worker can prove.

The worker runs the production settings module (`hitl.settings`), configured through environment
variables exactly as ops would, with the test database's URL; it can be killed (SIGKILL to its whole
process group: the cluster's sentinel, workers, monitor and pusher) and started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.utils import timezone

BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        assert name and ":memory:" not in name and "mode=memory" not in name, "the worker needs a file database"
        return f"sqlite:///{name}"
    if connection.vendor == "postgresql":
        auth = quote(db["USER"] or "")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"])
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise NotImplementedError(connection.vendor)


class QCluster:
    def __init__(self, log_path: Path, **env: str):
        self.log_path = log_path
        self.extra_env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="hitl.settings",
            SECRET_KEY=settings.SECRET_KEY,
            DEBUG="0",
            DATABASE_URL=database_url(),
            HITL_ENCRYPTION_KEYS=",".join(settings.HITL_ENCRYPTION_KEYS),
            HITL_EGRESS_ALLOWED_HOSTS=",".join(settings.HITL_EGRESS_ALLOWED_HOSTS),
            HITL_BASE_URL=settings.HITL_BASE_URL,
            HITL_INBOUND_DOMAIN=settings.HITL_INBOUND_DOMAIN,
            ANYMAIL_WEBHOOK_SECRET=str(settings.ANYMAIL.get("WEBHOOK_SECRET", "")),
            HITL_WEBHOOK_TIMEOUT=str(settings.HITL_WEBHOOK_TIMEOUT),
            HITL_WEBHOOK_RETRY_BASE=str(settings.HITL_WEBHOOK_RETRY_BASE),
            HITL_Q_WORKERS="1",
            HITL_TASKS_SYNC="0",
            PYTHONUNBUFFERED="1",
        )
        if settings.REDIS_URL:
            env["REDIS_URL"] = settings.REDIS_URL
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it until it exits)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "worker"],
            cwd=BASE_DIR,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches every process it forks
        )
        log.close()
        # Ready when it has run a task: the probe goes through the same broker as everything else.
        try:
            assert run_task("builtins.str", "pong", timeout=timeout) == "pong"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- qcluster log ---\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL, no clean shutdown: what a crash or an OOM kill does."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None
            wait_for_dead_consumers()

    def send(self, signum: int, *, group: bool, timeout: float = 10.0) -> float:
        """Send `signum` to the worker alone or to its whole process group (as systemd and `kill 0` do);
        wait for it to exit and return how long the stop took."""
        assert self.proc is not None
        started = time.monotonic()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the worker did not stop within {timeout}s\n--- log ---\n{self.log()}") from None
        took = time.monotonic() - started
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}\n{self.log()}"
        # Nothing of the cluster may outlive its master (killed ones may take a moment to be reaped).
        gone_by = time.monotonic() + 1
        while True:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > gone_by:
                raise AssertionError(f"processes of the worker's group outlived it\n{self.log()}")
            time.sleep(0.05)
        self.proc = None
        wait_for_dead_consumers()
        return took

    def stop(self) -> None:
        """Teardown. A clean qcluster shutdown drains and waits for seconds; tests need only the
        processes gone (the database is flushed and the broker purged before the next test)."""
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""


def run_task(func: str, *args: Any, timeout: float = 30.0) -> Any:
    """Enqueue on the real broker and wait for the worker's result."""
    from django_q.tasks import async_task, fetch

    task_id = async_task(func, *args, sync=False)
    task = fetch(task_id, wait=int(timeout * 1000))
    assert task is not None, f"no worker ran {func} within {timeout}s"
    assert task.success, task.result
    return task.result


def tick_schedule(name: str, timeout: float = 30.0) -> Any:
    """One tick of django-q2's scheduler for schedule `name`, made due now, and the task's result.

    The cluster calls the scheduler itself only every 30 s; the test makes the tick happen instead of
    waiting for it, through the very code path (Schedule row → scheduler → broker → worker)."""
    from django_q.models import Schedule
    from django_q.scheduler import scheduler
    from django_q.tasks import fetch

    Schedule.objects.filter(name=name).update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler()
    task_id = Schedule.objects.get(name=name).task
    deadline = time.monotonic() + timeout
    task = fetch(task_id, wait=int(timeout * 1000))
    assert task is not None and time.monotonic() <= deadline + 1, f"no worker ran schedule {name}"
    assert task.success, task.result
    return task.result


def wait_for_dead_consumers(timeout: float = 10.0) -> None:
    """Wait until Redis has noticed that the killed cluster's BLPOP connections are gone.

    Until it has, Redis may hand the next pushed task (the restarted cluster's start probe) to a dead
    client's pending BLPOP, and the task is lost: the Redis broker's at-most-once delivery, which the
    server's own work does not rely on, but which made the probe time out now and then."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and int(client.info("clients").get("blocked_clients", 0)) > 0:
        time.sleep(0.05)
    client.close()


def wait_until(check: Any, timeout: float = 30.0, *, what: str = "condition", cluster: QCluster | None = None) -> Any:
    """Poll `check` until it returns something truthy (returned) or `timeout` passes (AssertionError
    naming `what`, with the worker's log when `cluster` is given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    log = f"\n--- qcluster log ---\n{cluster.log()}" if cluster is not None else ""
    raise AssertionError(f"{what}: not met within {timeout}s{log}")
