"""PostgreSQL restarted under load: is anything lost, duplicated, or left hanging? (issue 8)

    .venv/bin/python tests/bench/pg_restart.py                       # ~2-3 minutes, restarts PostgreSQL once
    .venv/bin/python tests/bench/pg_restart.py --load-seconds 60 --restart-at 20 --markdown out.md

On demand, not in CI: it restarts the machine's PostgreSQL cluster (`pg_ctlcluster … restart`), which
every other user of that server notices for a few seconds.

Method. A scratch database (`--database`, dropped at the end) and Redis db (`--redis-db`, flushed) are
migrated and given a deployment, an API key and a webhook pointing at a receiver in this process. Then
gunicorn (bench settings, DEBUG off, email to a backend that sends nothing) and a `qcluster` start, and
`--clients` threads drive the REST API for `--load-seconds`: each creates a request (a unique `flow_id`
marks every logical create), then answers it — except every fourth, which has a 3-second timeout with a
default outcome and is left for the deadline sweep. `--restart-at` seconds in, PostgreSQL is restarted.

The API has no idempotency key for creates, so a client that saw a failure it cannot interpret (a 503,
a broken connection, a timeout) does not know whether the create happened; it looks the `flow_id` up
before retrying and only re-creates if it is absent. Every attempt and its outcome is recorded. After
the load the script waits for the sweep (deadlines, webhook retries) to settle, then checks in the
database: every create the client saw succeed exists exactly once; no `flow_id` has two requests;
every request is either pending with no resolution or resolved with exactly one; every webhook delivery
was delivered (and the receiver got it) or recorded failed; `manage.py audit_verify` passes; the
server and the worker are still alive. It prints a report (Markdown with `--markdown FILE`) and exits
non-zero if a check failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
CLIENT_TIMEOUT = 10.0  # seconds; an answer slower than this counts as a hang


# --- the world around the server -------------------------------------------------------------------


def pg_cluster() -> tuple[str, str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return version, "main"


def restart_postgres() -> float:
    version, name = pg_cluster()
    started = time.monotonic()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"], check=True)
    return time.monotonic() - started


def admin_sql(base_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@dataclass
class Env:
    database_url: str
    redis_url: str
    port: int
    hook_port: int
    workdir: Path
    conn_max_age: int

    def vars(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HITL_", "DATABASE_", "REDIS_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="tests.bench.settings",
            DEBUG="0",
            SECRET_KEY="bench-pg-restart-secret-key-0123456789abcdef",
            ANYMAIL_WEBHOOK_SECRET="esp:bench-secret",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",  # no network
            HITL_ENCRYPTION_KEYS="x3u4zmuXqSDg4c6ALkMFbp5bxBeAVPuxNOQXvVtvc1M=",
            HITL_EGRESS_ALLOWED_HOSTS="127.0.0.1",
            HITL_BASE_URL=f"http://127.0.0.1:{self.port}",
            HITL_WEBHOOK_TIMEOUT="5",
            HITL_WEBHOOK_RETRY_BASE="2",
            HITL_Q_WORKERS="2",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DB_CONN_MAX_AGE=str(self.conn_max_age),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.vars(), capture_output=True, text=True, check=check
        )

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.vars(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class HookReceiver(BaseHTTPRequestHandler):
    """Accepts every webhook (2xx) and remembers its webhook-id."""

    received: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            self.received[self.headers.get("webhook-id", "")] += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


# --- the client ------------------------------------------------------------------------------------


@dataclass
class Attempt:
    op: str  # create | lookup | respond
    started: float
    ended: float
    outcome: str  # "201", "503 database_unavailable", "ReadTimeout", ...

    @property
    def ok(self) -> bool:
        return self.outcome.split()[0] in ("200", "201") or self.outcome == "409 not_pending"


@dataclass
class Logical:
    """One request the client meant to create (and maybe answer)."""

    marker: str
    expire: bool
    request_id: str | None = None
    create: str = ""  # ok | found-after-ambiguous | not-created-after-ambiguous | gave-up
    respond: str = ""  # ok | ok-after-ambiguous(409) | gave-up | skipped
    attempts: list[Attempt] = field(default_factory=list)


def classify(response: httpx.Response | None, exc: Exception | None) -> str:
    if exc is not None:
        return type(exc).__name__
    assert response is not None
    code = ""
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            code = str(response.json().get("code") or "")
        except ValueError:
            code = "not-json"
    else:
        code = "html" if "html" in response.headers.get("content-type", "") else "non-json"
    return f"{response.status_code} {code}".strip()


class Client:
    def __init__(self, base: str, key: str, t0: float):
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=CLIENT_TIMEOUT)
        self.t0 = t0

    def call(self, item: Logical, op: str, method: str, url: str, **kw: Any) -> tuple[httpx.Response | None, str]:
        started = time.monotonic() - self.t0
        response: httpx.Response | None = None
        exc: Exception | None = None
        try:
            response = self.http.request(method, url, **kw)
        except httpx.HTTPError as error:
            exc = error
        outcome = classify(response, exc)
        item.attempts.append(Attempt(op, started, time.monotonic() - self.t0, outcome))
        return response, outcome

    def backoff(self, response: httpx.Response | None, tries: int) -> None:
        retry_after = response.headers.get("retry-after") if response is not None else None
        time.sleep(min(float(retry_after) if retry_after else 0.5 * tries, 5.0))

    def create(self, item: Logical) -> None:
        body: dict[str, Any] = {
            "method_name": "bench_pg_restart",
            "message": "Approve?",
            "emit_options": ["approved", "rejected"],
            "flow_id": item.marker,
        }
        if item.expire:
            body.update(timeout=3, default_outcome="approved")
        ambiguous = False
        for tries in range(1, 30):
            if ambiguous:
                # Did the failed attempt create it after all? Look before creating again.
                response, outcome = self.call(
                    item, "lookup", "GET", "/api/v1/requests/", params={"flow_id": item.marker}
                )
                if response is None or response.status_code != 200:
                    self.backoff(response, tries)
                    continue
                found = response.json()["results"] if isinstance(response.json(), dict) else response.json()
                if found:
                    item.request_id, item.create = found[0]["id"], "found-after-ambiguous"
                    return
            response, outcome = self.call(item, "create", "POST", "/api/v1/requests/", json=body)
            if response is not None and response.status_code == 201:
                item.request_id = response.json()["id"]
                item.create = "not-created-after-ambiguous" if ambiguous else "ok"
                return
            if response is not None and response.status_code < 500:
                item.create = f"refused {outcome}"
                return
            ambiguous = True  # 5xx, timeout, broken connection: the outcome is unknown
            self.backoff(response, tries)
        item.create = "gave-up"

    def respond(self, item: Logical) -> None:
        retried = False
        for tries in range(1, 30):
            response, outcome = self.call(
                item, "respond", "POST", f"/api/v1/requests/{item.request_id}/respond/", json={"outcome": "approved"}
            )
            if response is not None and response.status_code == 200:
                item.respond = "ok"
                return
            if response is not None and response.status_code == 409:
                # Already answered: by our own earlier attempt whose answer we never saw.
                item.respond = "ok-after-ambiguous(409)" if retried else "409-unexpected"
                return
            if response is not None and response.status_code < 500:
                item.respond = f"refused {outcome}"
                return
            retried = True
            self.backoff(response, tries)
        item.respond = "gave-up"


def client_loop(
    index: int, base: str, key: str, t0: float, stop_at: threading.Event, items: list[Logical], lock: threading.Lock
) -> None:
    client = Client(base, key, t0)
    n = 0
    while not stop_at.is_set():
        n += 1
        item = Logical(marker=f"bench-pgr-{index}-{n}", expire=(n % 4 == 0))
        with lock:
            items.append(item)
        client.create(item)
        if item.request_id and not item.expire:
            client.respond(item)
        elif not item.expire:
            item.respond = "skipped"


def probe_loop(base: str, key: str, t0: float, stop_at: threading.Event, log: list[Attempt]) -> None:
    """A cheap read that needs the database, ten times a second: when the API stopped and started
    answering (the clients themselves back off for Retry-After, which blurs that)."""
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=CLIENT_TIMEOUT)
    while not stop_at.is_set():
        started = time.monotonic() - t0
        try:
            outcome = classify(http.get("/api/v1/requests/", params={"limit": 1}), None)
        except httpx.HTTPError as exc:
            outcome = classify(None, exc)
        log.append(Attempt("probe", started, time.monotonic() - t0, outcome))
        time.sleep(0.1)


# --- the run ---------------------------------------------------------------------------------------


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--database", default="hitl_bench_faults")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=6)
    parser.add_argument("--port", type=int, default=8201)
    parser.add_argument("--hook-port", type=int, default=8202)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--restart-at", type=float, default=20)
    parser.add_argument("--settle-seconds", type=float, default=150, help="max wait for sweeps after the load")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--conn-max-age", type=int, default=0, help="DB_CONN_MAX_AGE of the server and worker")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--no-restart", action="store_true", help="the same run without the restart (baseline)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pg-restart-"))
    env = Env(
        database_url=f"{args.pg}/{args.database}",
        redis_url=f"{args.redis}/{args.redis_db}",
        port=args.port,
        hook_port=args.hook_port,
        workdir=workdir,
        conn_max_age=args.conn_max_age,
    )
    import redis

    redis.Redis.from_url(env.redis_url).flushdb()
    admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.database}"')
    admin_sql(args.pg, f'CREATE DATABASE "{args.database}"')
    web = qcluster = None
    hooks = ThreadingHTTPServer(("127.0.0.1", args.hook_port), HookReceiver)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    try:
        env.manage("migrate", "--noinput")
        deployment = env.manage("create_deployment", "--name", "PG restart", "--creator-email", "lead@example.com")
        deployment_id = deployment.stdout.strip().splitlines()[-1]
        key = env.manage("create_api_key", "--deployment", deployment_id).stdout.strip().splitlines()[-1]
        env.manage("add_webhook", "--deployment", deployment_id, "--url", f"http://127.0.0.1:{args.hook_port}/hooks")
        web = env.spawn(
            "gunicorn",
            [
                PY, "-m", "gunicorn", "hitl.wsgi", "-b", f"127.0.0.1:{args.port}",
                "-w", str(args.gunicorn_workers), "--threads", "2", "--timeout", "30",
            ],
        )  # fmt: skip
        qcluster = env.spawn("qcluster", [PY, "manage.py", "qcluster"])
        base = f"http://127.0.0.1:{args.port}"
        wait_http(f"{base}/api/v1/requests/")  # any answer (401 here) means it serves

        items: list[Logical] = []
        lock = threading.Lock()
        stop_load = threading.Event()
        t0 = time.monotonic()
        started_at = datetime.now(UTC)
        threads = [
            threading.Thread(target=client_loop, args=(i, base, key, t0, stop_load, items, lock), daemon=True)
            for i in range(args.clients)
        ]
        probes: list[Attempt] = []
        threads.append(threading.Thread(target=probe_loop, args=(base, key, t0, stop_load, probes), daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(args.restart_at)
        restart_start = time.monotonic() - t0
        restart_seconds = 0.0 if args.no_restart else restart_postgres()
        restart_end = time.monotonic() - t0
        time.sleep(max(0.0, args.load_seconds - (time.monotonic() - t0)))
        stop_load.set()
        for thread in threads:
            thread.join(timeout=CLIENT_TIMEOUT * 3 + 60)
        load_end = time.monotonic() - t0
        hung_threads = sum(thread.is_alive() for thread in threads)

        settled, settle_seconds = settle(env, args.settle_seconds)
        report = verify(env, items, HookReceiver.received, web, qcluster)
        failed_probes = [p for p in probes if not p.ok]
        unclean_probes = collections.Counter(
            p.outcome for p in failed_probes if not p.outcome.startswith("503 database")
        )
        if unclean_probes:
            report["passed"] = False
            report["problems"].append(f"probe failures that were not a clean 503: {dict(unclean_probes)}")
        first_bad: float | None
        if failed_probes:
            first_bad = failed_probes[0].started
            last_bad = failed_probes[-1].ended
            back: float | None = next((p.started for p in probes if p.ok and p.started >= last_bad), None)
        else:
            first_bad = back = None
        report.update(
            probes=len(probes),
            probe_failures=collections.Counter(p.outcome for p in failed_probes),
            probe_first_bad=first_bad,
            probe_back=back,
            probe_max_latency=max((p.ended - p.started for p in probes), default=0.0),
            started_at=started_at.strftime("%Y-%m-%d %H:%M UTC"),
            restart_start=restart_start,
            restart_end=restart_end,
            restart_seconds=restart_seconds,
            load_end=load_end,
            hung_threads=hung_threads,
            settled=settled,
            settle_seconds=settle_seconds,
            args=vars(args),
            qcluster_tracebacks=(workdir / "qcluster.log").read_text(errors="replace").count("Traceback"),
            gunicorn_tracebacks=(workdir / "gunicorn.log").read_text(errors="replace").count("Traceback"),
            workdir=str(workdir),
        )
        text = render(report)
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        return 0 if report["passed"] else 1
    finally:
        stop(web)
        stop(qcluster)
        hooks.shutdown()
        if not args.keep:
            admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            redis.Redis.from_url(env.redis_url).flushdb()


def _django(env: Env) -> None:
    if "django" in sys.modules and getattr(sys.modules["django"], "_bench_ready", False):
        return
    os.environ.update(env.vars())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    django._bench_ready = True  # type: ignore[attr-defined]


def settle(env: Env, limit: float) -> tuple[bool, float]:
    """Wait until no deadline is overdue and no webhook delivery is pending (the cluster's minute sweep
    does both), at most `limit` seconds."""
    _django(env)
    from django.db import connection
    from django.utils import timezone

    from hitl.models import DeliveryStatus, HITLRequest, WebhookDelivery

    started = time.monotonic()
    while time.monotonic() - started < limit:
        connection.close()
        overdue = HITLRequest.objects.filter(status="pending", due_at__lt=timezone.now()).exists()
        pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()
        if not overdue and not pending:
            return True, time.monotonic() - started
        time.sleep(2)
    return False, time.monotonic() - started


def verify(
    env: Env,
    items: list[Logical],
    received: collections.Counter[str],
    web: subprocess.Popen[bytes] | None,
    qcluster: subprocess.Popen[bytes] | None,
) -> dict[str, Any]:
    _django(env)
    from django.db.models import Count

    from hitl.models import DeliveryStatus, HITLRequest, Resolution, WebhookDelivery

    problems: list[str] = []
    per_marker = dict(
        HITLRequest.objects.filter(flow_id__startswith="bench-pgr-")
        .values("flow_id")
        .annotate(n=Count("id"))
        .values_list("flow_id", "n")
    )
    ids = dict(HITLRequest.objects.filter(flow_id__startswith="bench-pgr-").values_list("flow_id", "id"))
    duplicates = [m for m, n in per_marker.items() if n > 1]
    if duplicates:
        problems.append(f"{len(duplicates)} flow_ids have more than one request: {duplicates[:5]}")
    known = {item.marker for item in items}
    unknown = sorted(set(per_marker) - known)
    if unknown:
        problems.append(f"{len(unknown)} requests the client never attempted: {unknown[:5]}")
    seen_ok = [item for item in items if item.request_id]
    for item in seen_ok:
        if per_marker.get(item.marker) != 1 or str(ids.get(item.marker)) != str(item.request_id):
            problems.append(f"create seen by the client missing or different: {item.marker}")
    unseen_but_created = [i.marker for i in items if not i.request_id and per_marker.get(i.marker)]
    if unseen_but_created:
        problems.append(f"created but the client never learnt it: {unseen_but_created[:5]}")

    statuses = collections.Counter(
        HITLRequest.objects.filter(flow_id__startswith="bench-pgr-").values_list("status", flat=True)
    )
    resolutions = dict(Resolution.objects.values("request_id").annotate(n=Count("pk")).values_list("request_id", "n"))
    for rid, status in HITLRequest.objects.filter(flow_id__startswith="bench-pgr-").values_list("id", "status"):
        n = resolutions.get(rid, 0)
        if (status == "pending" and n != 0) or (status != "pending" and n != 1):
            problems.append(f"request {rid} is {status} with {n} resolutions")
    answered = [i for i in items if i.respond in ("ok", "ok-after-ambiguous(409)")]
    answered_statuses = collections.Counter(
        HITLRequest.objects.filter(pk__in=[i.request_id for i in answered]).values_list("status", flat=True)
    )
    if set(answered_statuses) - {"responded"}:
        problems.append(f"answered requests not 'responded': {dict(answered_statuses)}")
    expiring = [i for i in items if i.expire and i.request_id]
    expired_statuses = collections.Counter(
        HITLRequest.objects.filter(pk__in=[i.request_id for i in expiring]).values_list("status", flat=True)
    )
    if set(expired_statuses) - {"auto_responded"}:
        problems.append(f"requests with a 3 s deadline not auto_responded: {dict(expired_statuses)}")

    # Requests left pending for their 3 s deadline were pending when their notification task ran, so
    # each should have been emailed (notified_at) or have its failure recorded (notification_error).
    unnotified = list(
        HITLRequest.objects.filter(
            pk__in=[i.request_id for i in expiring], notified_at__isnull=True, notification_error=""
        ).values_list("flow_id", flat=True)
    )

    deliveries = collections.Counter(WebhookDelivery.objects.values_list("status", flat=True))
    delivered_ids = set(
        WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).values_list("message_id", flat=True)
    )
    not_received = delivered_ids - set(received)
    if not_received:
        problems.append(f"{len(not_received)} deliveries marked delivered but never received")
    expected_deliveries = HITLRequest.objects.filter(flow_id__startswith="bench-pgr-").count() + sum(
        statuses[s] for s in statuses if s != "pending"
    )
    total_deliveries = sum(deliveries.values())
    if total_deliveries != expected_deliveries:
        problems.append(f"{total_deliveries} webhook deliveries, expected {expected_deliveries} (one per event)")
    if deliveries.get(DeliveryStatus.PENDING):
        problems.append(f"{deliveries[DeliveryStatus.PENDING]} deliveries still pending")
    duplicated_receipts = sum(1 for n in received.values() if n > 1)

    audit = env.manage("audit_verify", check=False)
    if audit.returncode != 0:
        problems.append(f"audit_verify failed: {audit.stdout.strip()[-300:]} {audit.stderr.strip()[-300:]}")
    if web is not None and web.poll() is not None:
        problems.append(f"gunicorn exited ({web.returncode})")
    if qcluster is not None and qcluster.poll() is not None:
        problems.append(f"qcluster exited ({qcluster.returncode})")

    attempts = [a for item in items for a in item.attempts]
    failures = [a for a in attempts if not a.ok]
    unclean = [a for a in failures if not a.outcome.startswith("503 database_unavailable")]
    slow = [a for a in attempts if a.ended - a.started >= CLIENT_TIMEOUT]
    if unclean:
        problems.append(
            f"{len(unclean)} client-visible failures were not a clean 503: "
            f"{dict(collections.Counter(a.outcome for a in unclean))}"
        )
    if slow:
        problems.append(f"{len(slow)} calls took {CLIENT_TIMEOUT:.0f} s or more")
    return {
        "passed": not problems,
        "problems": problems,
        "logical": len(items),
        "create_outcomes": collections.Counter(i.create for i in items),
        "respond_outcomes": collections.Counter(i.respond for i in items if not i.expire),
        "statuses": statuses,
        "duplicates": len(duplicates),
        "attempts": collections.Counter(a.op for a in attempts),
        "failures": collections.Counter(f"{a.op}: {a.outcome}" for a in failures),
        "first_failure": min((a.started for a in failures), default=None),
        "last_failure_end": max((a.ended for a in failures), default=None),
        "max_latency": max((a.ended - a.started for a in attempts), default=0.0),
        "deliveries": deliveries,
        "expiring": len(expiring),
        "unnotified": unnotified,
        "received": len(received),
        "duplicated_receipts": duplicated_receipts,
        "audit": audit.stdout.strip().splitlines()[-1] if audit.stdout.strip() else audit.stderr.strip()[-200:],
        "audit_ok": audit.returncode == 0,
        "attempt_log": attempts,
    }


def render(r: dict[str, Any]) -> str:
    a = r["args"]

    def counter(c: collections.Counter[Any]) -> str:
        return ", ".join(f"{k or '(none)'}: {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "none"

    first, last = r["first_failure"], r["last_failure_end"]
    outage = (
        f"client-visible failures from t={first:.1f} s to t={last:.1f} s ({last - first:.1f} s); the API answered "
        f"normally again {last - r['restart_start']:.1f} s after the restart began"
        if first is not None
        else "no client-visible failure at all"
    )
    if r["probe_first_bad"] is not None and r["probe_back"] is None:
        probe = f"failing from t={r['probe_first_bad']:.1f} s and **never answering again**"
    elif r["probe_first_bad"] is not None:
        probe = (
            f"{r['probes']} probes (GET /api/v1/requests/?limit=1 every 0.1 s); "
            f"failing from t={r['probe_first_bad']:.1f} s, "
            f"answering again at t={r['probe_back']:.1f} s: **{r['probe_back'] - r['restart_start']:.1f} s after the "
            f"restart began**; failures: {counter(r['probe_failures'])}; slowest probe {r['probe_max_latency']:.2f} s"
        )
    else:
        probe = f"{r['probes']} probes, none failed"
    lines = [
        "# PostgreSQL restart under load",
        "",
        f"- Machine: {platform.node()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, PostgreSQL {pg_cluster()[0]}, Redis broker",
        f"- Date: {r['started_at']}",
        f"- Command: `.venv/bin/python tests/bench/pg_restart.py --clients {a['clients']} --load-seconds "
        f"{a['load_seconds']:g} --restart-at {a['restart_at']:g} --conn-max-age {a['conn_max_age']}`",
        f"- Server: gunicorn, {a['gunicorn_workers']} workers × 2 threads, `bench.settings`, DEBUG off, "
        f"DB_CONN_MAX_AGE={a['conn_max_age']}; one `qcluster` (2 workers, Redis broker); webhook to a local receiver",
        "",
        "## Result: " + ("**passed**" if r["passed"] else "**FAILED**"),
        "",
        *[f"- problem: {p}" for p in r["problems"]],
        "",
        "| | |",
        "|---|---|",
        f"| PostgreSQL restart | began at t={r['restart_start']:.1f} s, `pg_ctlcluster restart` took "
        f"{r['restart_seconds']:.1f} s |",
        f"| outage as a probe saw it | {probe} |",
        f"| outage as the load clients saw it | {outage} |",
        f"| load | {r['logical']} logical requests by {a['clients']} clients over {r['load_end']:.0f} s; "
        f"calls: {counter(r['attempts'])} |",
        f"| creates | {counter(r['create_outcomes'])} |",
        f"| answers (non-expiring) | {counter(r['respond_outcomes'])} |",
        f"| requests in the database | {counter(r['statuses'])}; flow_ids with two requests: {r['duplicates']} |",
        f"| failed calls (all retried) | {counter(r['failures'])} |",
        f"| slowest call | {r['max_latency']:.2f} s (client timeout {CLIENT_TIMEOUT:.0f} s); threads still hung: "
        f"{r['hung_threads']} |",
        f"| webhook deliveries | {counter(r['deliveries'])}; receiver got {r['received']} distinct webhook-ids, "
        f"{r['duplicated_receipts']} more than once |",
        f"| email notifications | {len(r['unnotified'])} of the {r['expiring']} requests left pending for "
        f"their deadline were neither emailed nor marked failed |",
        f"| settled | {'yes' if r['settled'] else 'NO'} after {r['settle_seconds']:.0f} s (deadline sweep, webhook "
        f"retries) |",
        f"| `audit_verify` | {'ok' if r['audit_ok'] else 'FAILED'}: {r['audit']} |",
        f"| tracebacks in logs | qcluster {r['qcluster_tracebacks']}, gunicorn {r['gunicorn_tracebacks']} "
        f"(logs in {r['workdir']}) |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
