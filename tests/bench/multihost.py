"""More machines (issue 21): two app hosts and one database + broker host, one app host killed mid-load.

    .venv/bin/python tests/bench/multihost.py              # as root (it creates netns); ~8-9 min on a busy 2-vCPU box
    .venv/bin/python tests/bench/multihost.py --rate 8 --seconds 8 --kill-seconds 20 --kill-at 6 --no-write  # ~5 min

**Hosts.** Each app host is a network namespace (`hitl-app1`, `hitl-app2`) with one veth pair whose
namespace end has a loopback-range address (127.2.0.11, 127.2.0.12) and whose root end is a port of a
bridge (`hitlmh0`, 127.2.0.1/24) in the root namespace: one L2 segment, 127.x addresses only
(`route_localnet=1` on the namespace ends and the bridge, as tests/bench/audit_append.py does). The
**database + broker host is the root namespace**: PostgreSQL and Redis listen on 127.0.0.1 only and are
not reconfigured for this script (they are shared with other work), so each is reached at 127.2.0.1
through a forwarding proxy. The load generator and the webhook receiver also run in the root namespace;
the load reaches app host N through a proxy on 127.2.0.1:1801N, the app hosts reach the receiver through
127.2.0.1:8302. This kernel has no `sch_netem` (see audit_append.py), so **every hop between hosts goes
through a proxy that holds each chunk 1 ms** on its way in (towards PostgreSQL, Redis, the app host or
the receiver; order kept): +1 ms per round trip, as `tc netem delay 1ms` on one side would add.

**Each app host** runs `manage.py serve` (`hitl serve`: gunicorn, 2 processes × 4 threads, bound to its
own address) and `manage.py worker` (`hitl worker`: django-q2 with 2 worker processes, the audit sealer
and the 2 s ticker), both with the production settings from environment variables (DEBUG=0, Redis
broker, PostgreSQL with DB_CONN_MAX_AGE=60, email to files in the host's own directory), started with
`ip netns exec`. One deployment, an API key, a routing rule (every request to one reviewer, so each
create sends one notification email) and one webhook subscribed to everything (pointing at the receiver).

**Load.** Open loop: create i is due at start + i / rate (`--rate`), sent to the live hosts in turn
(round robin) with `Idempotency-Key` and a unique `flow_id`. A connection that fails, breaks or gets a
5xx is retried at once on the other host with the same key (a create the dead host had committed comes
back as a replay, never twice), and the failed host is skipped for 5 s (a balancer's passive health
check); accepted = a 201 received. A key whose first call died with its host stays
`idempotency_in_progress` until the server takes it over (after 10 s on PostgreSQL: the dead call's
row lock is gone); after 50 such answers (~25 s) the client looks the `flow_id` up and creates under a
new key if absent, or answers
under a new key (answering is exactly once by itself: a second answer is 409 `not_pending`); these are
counted. The reviewer answers each accepted request through `POST /api/v1/requests/<id>/respond/` (same
failover, its own key) once its notification email is in the mail directories, at the earliest
`--answer-after` and at the latest `--answer-timeout` seconds after the create (the email channel skips
a request that is no longer pending, so answering first would hide a missing email). Latency is from
the due time (queueing counts); the answer's from when the reviewer sends it.

**Phases.** A: host 1 alone; first the capacity (closed loop: `--capacity-clients` connections
creating back to back for `--capacity-seconds`, not answered, not checked), then the open-loop load for
`--seconds`. B: the same with both hosts. C: both hosts for
`--kill-seconds`, and `--kill-at` seconds in every process in `hitl-app2` (its gunicorn master and
workers, its worker's sentinel, pusher, workers, monitor) gets SIGKILL at once (`ip netns pids`); the
load goes on against host 1. After the load, the script waits (at most `--recovery` s) until no
delivery is pending and the Redis queue is empty: host 1's ticker re-queues deliveries whose queued
task or lease was lost (after `QUEUED_FOR_SECONDS` = 60 s for a lost queued task, after the 5 s
webhook timeout + 5 s margin for a lease).

**Checks, per phase.** Every accepted request exists once (per `flow_id`), is resolved, has exactly one
Resolution row and one `response.submitted` audit event; emails per request (the notification's
Message-ID `<hitl-<id>@…>` counted in both hosts' mail directories): exactly one expected; webhook
deliveries at the receiver: one distinct `webhook-id` per (request, event) expected, with receipts of
the same `webhook-id` counted apart (redeliveries: at-least-once is the contract); every delivery row
`delivered`; at the end `manage.py audit_verify` passes. A notification task held by the killed worker
is lost with it (the Redis broker does not hand a pulled task out again), but not the notification: its
outbox row is queued again by host 1's ticker (after 60 s for a task lost on the queue, after the lease
of 100 s for a try in progress), so the reviewer waits up to `--answer-timeout` (150 s) for it.

Everything is torn down in `finally` (processes, namespaces, bridge, proxies, the scratch database
`--database`, Redis db `--redis-db`), also on failure. Writes tests/bench/results/multihost.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import ROOT, Stack, percentile, table, write_section  # noqa: E402

BRIDGE, DB_ADDR = "hitlmh0", "127.2.0.1"
HOSTS = {1: "127.2.0.11", 2: "127.2.0.12"}
APP_PORT, RECEIVER_PORT = 8000, 8302
LB_PORT = {1: 18011, 2: 18012}  # the load's way to each app host (1 ms proxy on the db host)
DELAY = 0.001
PREFIX = "bench-mh"
DOWN_FOR = 5.0  # seconds the load skips a host after a failed connection (a balancer's passive check)
STUCK_TRIES = 50  # idempotency_in_progress answers (~25 s) before a key counts as held by a dead call


def ns(n: int) -> str:
    return f"hitl-app{n}"


# --- the network ---------------------------------------------------------------------------------------


def sh(*argv: str, check: bool = True) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True)  # noqa: S603
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def netns_up() -> str:
    netns_down()
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("sysctl", "-qw", f"net.ipv4.conf.{BRIDGE}.route_localnet=1")
    sh("ip", "addr", "add", f"{DB_ADDR}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for n, addr in HOSTS.items():
        root_end, ns_end = f"mhv{n}", f"mhp{n}"
        sh("ip", "netns", "add", ns(n))
        sh("ip", "link", "add", root_end, "type", "veth", "peer", "name", ns_end)
        sh("ip", "link", "set", ns_end, "netns", ns(n))
        sh("ip", "link", "set", root_end, "master", BRIDGE)
        sh("ip", "link", "set", root_end, "up")
        inside = ("ip", "netns", "exec", ns(n))
        sh(*inside, "sysctl", "-qw", f"net.ipv4.conf.{ns_end}.route_localnet=1")
        sh(*inside, "ip", "addr", "add", f"{addr}/24", "dev", ns_end)
        sh(*inside, "ip", "link", "set", ns_end, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
    probe = subprocess.run(  # noqa: S603
        ["ip", "netns", "exec", ns(1), "tc", "qdisc", "add", "dev", "mhp1", "root", "netem", "delay", "1ms"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode == 0:  # netem exists here after all: keep to one mechanism (the proxies)
        sh("ip", "netns", "exec", ns(1), "tc", "qdisc", "del", "dev", "mhp1", "root", check=False)
        return "1 ms added by forwarding proxies (netem is available but not used, for one mechanism)"
    return f"1 ms added by forwarding proxies (tc netem refused: {probe.stderr.strip()})"


def netns_down() -> None:
    for n in HOSTS:
        kill_namespace(n)
        sh("ip", "netns", "del", ns(n), check=False)
        sh("ip", "link", "del", f"mhv{n}", check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


def kill_namespace(n: int) -> int:
    """SIGKILL every process in the host's namespace at once; returns how many."""
    out = subprocess.run(["ip", "netns", "pids", ns(n)], capture_output=True, text=True, check=False)  # noqa: S607
    pids = [int(p) for p in out.stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


# --- the 1 ms proxy (its own process per route) ---------------------------------------------------------


def delay_proxy(listen: tuple[str, int], target: tuple[str, int]) -> None:
    """listen → target, each chunk towards the target held DELAY s (order kept), as audit_append.py."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()  # the host is down: the client sees the connection closed
            return
        await asyncio.gather(pipe(client_r, server_w, DELAY), pipe(server_r, client_w, 0.0), return_exceptions=True)

    async def serve() -> None:
        server = await asyncio.start_server(handle, *listen, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# --- the webhook receiver (its own process) ----------------------------------------------------------


def receiver(port: int, ready: Any) -> None:
    lock = threading.Lock()
    per_id: collections.Counter[str] = collections.Counter()
    ids_per_key: dict[str, set[str]] = collections.defaultdict(set)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            msg_id = self.headers.get("webhook-id", "")
            try:
                payload = json.loads(body)
                key = f"{payload['request']['id']}|{payload['event']}"
            except (ValueError, KeyError, TypeError):
                key = "?"
            with lock:
                per_id[msg_id] += 1
                ids_per_key[key].add(msg_id)
            self._answer(200, b"ok")

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                report = {"per_id": dict(per_id), "ids_per_key": {k: sorted(v) for k, v in ids_per_key.items()}}
            self._answer(200, json.dumps(report).encode())

        def _answer(self, status: int, reply: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    ready.set()
    server.serve_forever(poll_interval=0.05)


def receiver_stats() -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{RECEIVER_PORT}/stats", timeout=30) as response:  # noqa: S310
        return dict(json.loads(response.read()))


# --- the load ------------------------------------------------------------------------------------------


@dataclass
class Item:
    index: int
    marker: str
    due: float
    host: int = 0  # the host whose 201 we got
    request_id: str = ""
    create_latency: float = 0.0
    create_tries: int = 0
    created_at: float = 0.0  # monotonic, when the 201 arrived
    answered: bool = False
    answer_conflict: bool = False
    emailed_first: bool = False
    answer_latency: float = 0.0
    answer_tries: int = 0
    outcomes: list[str] = field(default_factory=list)


async def http(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(DB_ADDR, port)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {DB_ADDR}:{port}", f"Content-Length: {len(body)}"]
        head += ["Content-Type: application/json", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    if not status_line:
        raise ConnectionResetError("closed without an answer")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


class MailWatch(threading.Thread):
    """Which requests' notification emails are in the hosts' mail directories (a reviewer's inbox)."""

    def __init__(self, tmp: Path):
        super().__init__(daemon=True)
        self.tmp = tmp
        self.seen: set[str] = set()
        self.sizes: dict[Path, int] = {}
        self.stop = threading.Event()

    def scan(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for path in self.tmp.glob("mail-app*/*"):
            counts.update(EMAIL_ID.findall(path.read_text(errors="replace")))
        return counts

    def run(self) -> None:
        while not self.stop.wait(0.25):
            for path in list(self.tmp.glob("mail-app*/*")):
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                if self.sizes.get(path) != size:
                    self.sizes[path] = size
                    self.seen.update(EMAIL_ID.findall(path.read_text(errors="replace")))


class Load:
    def __init__(self, key: str, hosts: list[int], args: argparse.Namespace, phase: str, mail: MailWatch):
        self.auth = {"Authorization": f"Bearer {key}"}
        self.hosts, self.phase, self.mail = hosts, phase, mail
        self.rate, self.seconds = args.rate, (args.kill_seconds if phase == "C" else args.seconds)
        self.answer_after, self.answer_timeout = args.answer_after, args.answer_timeout
        self.items: list[Item] = []
        self.failovers = 0
        self.lost_creates = 0
        self.stuck: collections.Counter[str] = collections.Counter()
        self.start = 0.0
        self.down_until: dict[int, float] = {}

    async def call(self, first: int, tries: list[str], method: str, path: str, body: bytes, key: str) -> Any:
        """Try `first`'s host, then the others in turn, with the same Idempotency-Key; returns (host,
        status, body) of the first definite answer, ("stuck", 409, b"") when the key stayed
        `idempotency_in_progress` for STUCK_TRIES answers (its first call died with its host: the key
        is taken over after 10 s, so this should not happen), or None after 80 tries."""
        order = itertools.cycle(self.hosts[first:] + self.hosts[:first])
        in_progress = 0
        for attempt in range(80):
            host = next(order)
            now = time.perf_counter()
            if self.down_until.get(host, 0.0) > now and any(self.down_until.get(h, 0.0) <= now for h in self.hosts):
                host = next(order)  # passive health check: skip a host that just failed, while another is up
            try:
                status, reply = await asyncio.wait_for(
                    http(LB_PORT[host], method, path, body, {**self.auth, "Idempotency-Key": key}), timeout=15
                )
            except (OSError, TimeoutError, ValueError, IndexError) as exc:
                tries.append(f"h{host}:{type(exc).__name__}")
                self.failovers += 1
                self.down_until[host] = time.perf_counter() + DOWN_FOR
                continue
            code = ""
            if status >= 400:
                try:
                    code = str(json.loads(reply).get("code", ""))
                except (ValueError, AttributeError):
                    code = "?"
            tries.append(f"h{host}:{status}{':' + code if code else ''}")
            if status >= 500 or code == "idempotency_in_progress":
                if code:
                    in_progress += 1
                    if in_progress >= STUCK_TRIES:
                        return "stuck", 409, b""
                self.failovers += 1
                await asyncio.sleep(0.1 * min(attempt, 5))
                continue
            return host, status, reply
        return None

    async def create(self, item: Item) -> Any:
        body = json.dumps(
            {
                "message": f"Please review item {item.index}",
                "method_name": "review_multihost",
                "emit_options": ["approved", "rejected"],
                "flow_id": item.marker,
            }
        ).encode()
        first = item.index % len(self.hosts)
        got = await self.call(first, item.outcomes, "POST", "/api/v1/requests/", body, item.marker)
        if got is not None and got[0] == "stuck":
            # The call that holds the key died with its host, so it rolled back; make sure (look the
            # flow_id up), then create under a new key.
            self.stuck["create"] += 1
            found = await self.call(
                first, item.outcomes, "GET", f"/api/v1/requests/?flow_id={item.marker}", b"", f"{item.marker}-look"
            )
            if found is not None and found[1] == 200:
                listed = json.loads(found[2])
                rows = listed["results"] if isinstance(listed, dict) else listed
                if rows:
                    self.stuck["create_found"] += 1
                    return found[0], 201, json.dumps(rows[0]).encode()
            got = await self.call(first, item.outcomes, "POST", "/api/v1/requests/", body, f"{item.marker}-2")
        return got

    async def answer(self, item: Item) -> Any:
        path = f"/api/v1/requests/{item.request_id}/respond/"
        body = b'{"outcome": "approved", "feedback": "ok"}'
        first = item.index % len(self.hosts)
        tries: list[str] = []
        got = await self.call(first, tries, "POST", path, body, f"{item.marker}-answer")
        if got is not None and got[0] == "stuck":
            # Answering is exactly once by itself (a second answer is 409 not_pending): a new key is safe.
            self.stuck["answer"] += 1
            got = await self.call(first, tries, "POST", path, body, f"{item.marker}-answer-2")
        item.outcomes += tries
        item.answer_tries = len(tries)
        return got

    async def one(self, item: Item) -> None:
        await asyncio.sleep(max(0.0, item.due - time.perf_counter()))
        got = await self.create(item)
        item.create_tries = len(item.outcomes)
        if got is None or got[1] != 201:
            self.lost_creates += 1
            return
        item.host, item.request_id = got[0], json.loads(got[2])["id"]
        item.create_latency = time.perf_counter() - item.due
        item.created_at = time.perf_counter()
        self.items.append(item)
        # The reviewer answers once the notification email is there (at the earliest `answer_after`
        # after the create, at the latest `answer_timeout`): a request answered before its notification
        # task ran gets no email (the channel skips a request that is no longer pending).
        earliest = item.created_at + self.answer_after
        latest = item.created_at + self.answer_timeout
        while time.perf_counter() < latest and (
            time.perf_counter() < earliest or item.request_id not in self.mail.seen
        ):
            await asyncio.sleep(0.25)
        item.emailed_first = item.request_id in self.mail.seen
        answer_due = time.perf_counter()
        got = await self.answer(item)
        item.answer_latency = time.perf_counter() - answer_due
        item.answered = got is not None and got[1] == 200
        if got is not None and got[1] == 409:
            item.answer_conflict = True

    async def run(self, events: dict[float, Any] | None = None) -> float:
        """The load; `events` maps seconds after the start to a callable run then (the kill)."""
        self.start = start = time.perf_counter() + 0.2
        total = int(self.rate * self.seconds)
        items = [Item(i, f"{PREFIX}-{self.phase}-{i}", start + i / self.rate) for i in range(total)]

        async def at(offset: float, action: Any) -> None:
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            await asyncio.get_running_loop().run_in_executor(None, action)

        tasks = [self.one(item) for item in items]
        tasks += [at(offset, action) for offset, action in (events or {}).items()]
        await asyncio.gather(*tasks)
        return time.perf_counter() - start


# --- the stack ---------------------------------------------------------------------------------------


class Hosts:
    def __init__(self, stack: Stack, static_root: str):
        self.stack = stack
        self.static_root = static_root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, n: int) -> dict[str, str]:
        db_url = f"postgres://postgres@{DB_ADDR}:5432/{self.stack.database}"
        redis_url = f"redis://{DB_ADDR}:6379/{self.stack.redis_url.rsplit('/', 1)[-1]}"
        mail = self.stack.tmp / f"mail-app{n}"
        mail.mkdir(exist_ok=True)
        return self.stack.env(
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            EMAIL_FILE_PATH=str(mail),
            STATIC_ROOT=self.static_root,
            HITL_BASE_URL=f"http://{HOSTS[n]}:{APP_PORT}",
            ALLOWED_HOSTS=",".join([DB_ADDR, *HOSTS.values(), "127.0.0.1", "localhost"]),
            DB_CONN_MAX_AGE="60",
        )

    def spawn(self, n: int, name: str, argv: list[str]) -> None:
        log = open(self.stack.tmp / f"app{n}-{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        self.procs[f"app{n}-{name}"] = subprocess.Popen(  # noqa: S603
            ["ip", "netns", "exec", ns(n), *argv],  # noqa: S607
            cwd=ROOT,
            env=self.env(n),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start(self, n: int) -> float:
        started = time.monotonic()
        py = sys.executable
        bind = f"{HOSTS[n]}:{APP_PORT}"
        self.spawn(n, "serve", [py, "manage.py", "serve", "--bind", bind, "--workers", "2", "--threads", "4"])
        self.spawn(n, "worker", [py, "manage.py", "worker"])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                status, _ = asyncio.run(http(LB_PORT[n], "GET", "/api/v1/version/", b"", {}))
                if status == 200:
                    return time.monotonic() - started
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"app host {n} did not start:\n{self.stack.log(f'app{n}-serve')}")

    def kill(self, n: int) -> int:
        killed = kill_namespace(n)
        for name, proc in self.procs.items():
            if name.startswith(f"app{n}-"):
                with contextlib.suppress(ProcessLookupError):  # anything that left the namespace (nothing should)
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        return killed

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def queue_length(stack: Stack) -> int:
    import redis

    r = redis.Redis.from_url(stack.redis_url)
    return sum(int(r.llen(k)) for k in r.keys("django_q:*:q"))  # type: ignore[union-attr]


def settle(stack: Stack, limit: float) -> tuple[bool, float]:
    from django.db import connection

    from hitl.models import DeliveryStatus, NotificationDelivery, WebhookDelivery

    started = time.monotonic()
    while time.monotonic() - started < limit:
        connection.close()
        pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count()
        pending += NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING).count()
        if not pending and not queue_length(stack):
            time.sleep(2)  # the last tasks finishing, a late duplicate arriving
            return True, time.monotonic() - started
        time.sleep(1)
    return False, time.monotonic() - started


EMAIL_ID = re.compile(r"^Message-ID: <hitl-([0-9a-f-]{36})@", re.M | re.I)


def check_phase(load: Load, mail: MailWatch, kill_at: float | None) -> dict[str, Any]:
    from django.db import connection

    from audit.models import AuditEvent, EventType
    from hitl.models import HITLRequest, Resolution, WebhookDelivery

    connection.close()
    prefix = f"{PREFIX}-{load.phase}-"
    rows = list(HITLRequest.objects.filter(flow_id__startswith=prefix).values_list("id", "flow_id", "notified_at"))
    per_flow = collections.Counter(flow for _, flow, _ in rows)
    ids = {str(pk) for pk, _, _ in rows}
    notified = {str(pk): at for pk, _, at in rows}
    accepted = {item.request_id for item in load.items}
    status = collections.Counter(
        HITLRequest.objects.filter(flow_id__startswith=prefix).values_list("status", flat=True)
    )
    resolutions = collections.Counter(
        str(r)
        for r in Resolution.objects.filter(request__flow_id__startswith=prefix).values_list("request_id", flat=True)
    )
    submitted = collections.Counter(
        str(t)
        for t in AuditEvent.objects.filter(
            event_type=EventType.RESPONSE_SUBMITTED, target_id__in=list(accepted)
        ).values_list("target_id", flat=True)
    )
    emails = mail.scan()
    hooks = receiver_stats()
    per_key = {k: v for k, v in hooks["ids_per_key"].items() if k.split("|")[0] in ids}
    phase_ids = {i for v in per_key.values() for i in v}
    redelivered = {i: n for i, n in hooks["per_id"].items() if i in phase_ids and n > 1}
    deliveries = collections.Counter(
        WebhookDelivery.objects.filter(request__flow_id__startswith=prefix).values_list("status", flat=True)
    )
    distinct = collections.Counter(
        len(per_key.get(f"{rid}|{event}", [])) for rid in accepted for event in ("new_request", "request_responded")
    )
    missed = [item for item in load.items if emails.get(item.request_id, 0) == 0]
    when: collections.Counter[str] = collections.Counter()
    for item in missed:
        created = item.created_at - load.start
        if kill_at is None:
            when["no kill in this phase"] += 1
        elif kill_at - 5 <= created <= kill_at:
            when["created ≤ 5 s before the kill"] += 1
        elif created > kill_at:
            when["created after the kill"] += 1
        else:
            when["created > 5 s before the kill"] += 1
    return {
        "accepted": len(accepted),
        "lost_creates": load.lost_creates,
        "in_db": len(rows),
        "flows_twice": sum(1 for n in per_flow.values() if n > 1),
        "created_unseen": len(ids - accepted),
        "accepted_missing": len(accepted - ids),
        "status": dict(status),
        "answered": sum(1 for item in load.items if item.answered),
        "answer_conflicts": sum(1 for item in load.items if item.answer_conflict),
        "answered_before_email": sum(1 for item in load.items if not item.emailed_first),
        "resolutions": dict(collections.Counter(resolutions.get(rid, 0) for rid in accepted)),
        "submitted_events": dict(collections.Counter(submitted.get(rid, 0) for rid in accepted)),
        "emails": dict(collections.Counter(emails.get(rid, 0) for rid in accepted)),
        "missed_emails_when": dict(when),
        "missed_emails_hosts": dict(collections.Counter(item.host for item in missed)),
        "missed_notified_at_set": sum(1 for item in missed if notified.get(item.request_id)),
        "hook_distinct_ids": dict(distinct),
        "redelivered_ids": len(redelivered),
        "redelivered_receipts": sum(n - 1 for n in redelivered.values()),
        "deliveries": dict(deliveries),
        "failovers": load.failovers,
        "stuck_keys": dict(load.stuck),
        "hosts": dict(collections.Counter(item.host for item in load.items)),
        "unanswered": [item.outcomes[-4:] for item in load.items if not item.answered][:5],
    }


def figures(load: Load, elapsed: float) -> dict[str, Any]:
    creates = [item.create_latency * 1000 for item in load.items]
    answers = [item.answer_latency * 1000 for item in load.items if item.answered]
    return {
        "offered": load.rate,
        "seconds": load.seconds,
        "accepted": len(load.items),
        "accepted_rate": len(load.items) / load.seconds,
        "answered_rate": sum(1 for i in load.items if i.answered) / load.seconds,
        "elapsed": elapsed,
        "create_p50": percentile(creates, 50),
        "create_p99": percentile(creates, 99),
        "answer_p50": percentile(answers, 50),
        "answer_p99": percentile(answers, 99),
        "load_avg": os.getloadavg()[0],
    }


async def capacity(key: str, hosts: list[int], seconds: float, clients: int, tag: str) -> dict[str, Any]:
    """Closed loop: `clients` connections each creating back to back for `seconds` (client j on host
    hosts[j % len]), no answers: the creates per second the live hosts sustain."""
    auth = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(j: int) -> None:
        nonlocal errors
        n = 0
        while time.perf_counter() < stop:
            n += 1
            body = json.dumps({"message": "Capacity", "method_name": "review_multihost", "flow_id": f"{tag}-{j}-{n}"})
            began = time.perf_counter()
            try:
                status, _ = await http(LB_PORT[hosts[j % len(hosts)]], "POST", "/api/v1/requests/", body.encode(), auth)
            except (OSError, ValueError, IndexError):
                status = 0
            if status == 201:
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(client(j) for j in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "errors": errors,
        "load_avg": os.getloadavg()[0],
    }


def warm_up(key: str, host: int, mail: MailWatch, args: argparse.Namespace) -> None:
    """A few creates against a fresh host (each gunicorn process imports and connects on its first
    calls), not counted."""
    warm = argparse.Namespace(**{**vars(args), "rate": 4.0, "seconds": 2.0, "answer_after": 0.0})
    warm.answer_timeout = 0.0
    asyncio.run(Load(key, [host], warm, f"warm{host}", mail).run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_bench_mh")
    parser.add_argument("--redis-db", type=int, default=10)
    parser.add_argument("--rate", type=float, default=6.0, help="creates per second offered (open loop)")
    parser.add_argument("--seconds", type=float, default=30.0, help="load of phases A and B")
    parser.add_argument("--kill-seconds", type=float, default=60.0, help="load of phase C")
    parser.add_argument("--kill-at", type=float, default=20.0, help="seconds into phase C when host 2 dies")
    parser.add_argument("--answer-after", type=float, default=1.0, help="earliest answer after the create (s)")
    parser.add_argument("--answer-timeout", type=float, default=150.0, help="answer then even without an email (s)")
    parser.add_argument("--capacity-seconds", type=float, default=10.0, help="closed-loop creates, A and B; 0: none")
    parser.add_argument("--capacity-clients", type=int, default=8)
    parser.add_argument("--recovery", type=float, default=240.0, help="max wait after phase C's load")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not args.database.startswith("hitl_bench_mh") or args.redis_db not in (10, 11):
        raise SystemExit("use a database named hitl_bench_mh* and Redis db 10 or 11")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the script creates network namespaces")

    stack = Stack(
        database=args.database,
        redis_db=args.redis_db,
        workers=2,
        HITL_EGRESS_ALLOWED_HOSTS=f"127.0.0.1,{DB_ADDR}",
        HITL_WEBHOOK_TIMEOUT="5",
        HITL_WEBHOOK_RETRY_BASE="2",
        HITL_TICK_SECONDS="2",
    )
    hosts = Hosts(stack, str(stack.tmp / "static"))
    mail = MailWatch(stack.tmp)
    proxies: list[Any] = []
    hook_proc = None
    r: dict[str, Any] = {"load_avg_before": os.getloadavg()[0]}
    try:
        r["delay"] = netns_up()
        routes = [((DB_ADDR, 5432), ("127.0.0.1", 5432)), ((DB_ADDR, 6379), ("127.0.0.1", 6379))]
        routes.append(((DB_ADDR, RECEIVER_PORT), ("127.0.0.1", RECEIVER_PORT)))
        routes += [((DB_ADDR, LB_PORT[n]), (addr, APP_PORT)) for n, addr in HOSTS.items()]
        ctx = multiprocessing.get_context("fork")
        for listen, target in routes:
            proc = ctx.Process(target=delay_proxy, args=(listen, target), daemon=True)
            proc.start()
            proxies.append(proc)
        ready = ctx.Event()
        hook_proc = ctx.Process(target=receiver, args=(RECEIVER_PORT, ready), daemon=True)
        hook_proc.start()
        ready.wait(10)
        mail.start()

        stack.create_database()
        stack.manage("collectstatic", "--noinput", "-v0")  # once: both hosts then serve with --no-collectstatic
        out = stack.manage("create_deployment", "--name", "More machines", "--creator-email", "lead@example.com")
        deployment = out.strip().splitlines()[-1]
        key = stack.manage("create_api_key", "--deployment", deployment).strip().splitlines()[-1]
        stack.manage(
            "add_routing_rule", "--deployment", deployment, "--name", "all", "--method-pattern", "*",
            "--assign-to-email", "reviewer@bench.example",
        )  # fmt: skip
        stack.manage("add_webhook", "--deployment", deployment, "--url", f"http://{DB_ADDR}:{RECEIVER_PORT}/hooks")
        stack.setup_django()

        loads: dict[str, Load] = {}
        kill: dict[str, Any] = {}

        def kill_host_2() -> None:
            kill["at"] = time.perf_counter()
            kill["processes"] = hosts.kill(2)

        for phase, live in (("A", [1]), ("B", [1, 2]), ("C", [1, 2])):
            for n in live:
                if f"start_{n}" not in r:
                    r[f"start_{n}"] = hosts.start(n)
                    warm_up(key, n, mail, args)
            settle(stack, 60)
            if phase != "C" and args.capacity_seconds > 0:
                cap = asyncio.run(
                    capacity(key, live, args.capacity_seconds, args.capacity_clients, f"{PREFIX}-cap{phase}")
                )
                r[f"capacity_{phase}"] = cap
                print(phase, "capacity", json.dumps(cap), flush=True)
                settle(stack, 90)
            load = loads[phase] = Load(key, live, args, phase, mail)
            events = {args.kill_at: kill_host_2} if phase == "C" else None
            elapsed = asyncio.run(load.run(events))
            r[phase] = figures(load, elapsed)
            print(phase, json.dumps(r[phase]), flush=True)
            r[f"settle_{phase}"] = settle(stack, args.recovery if phase == "C" else 90)
            if phase == "C":
                r["kill"] = {"processes": kill.get("processes"), "at_s": kill.get("at", 0.0) - load.start}
                r["recovered_after_kill_s"] = time.perf_counter() - kill.get("at", 0.0)
            r[f"check_{phase}"] = check_phase(load, mail, args.kill_at if phase == "C" else None)
            print(phase, json.dumps(r[f"check_{phase}"], default=str), flush=True)
        audit = subprocess.run(
            [sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=stack.env(), capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        r["audit"] = {"ok": audit.returncode == 0, "out": audit.stdout.strip().splitlines()[-1:]}
        r["tracebacks"] = {
            name: (stack.tmp / f"{name}.log").read_text(errors="replace").count("Traceback") for name in hosts.procs
        }
        r["load_avg_after"] = os.getloadavg()[0]
        (stack.tmp / "results.json").write_text(json.dumps(r, default=str, indent=1))
        print(json.dumps(r, default=str))
        if not args.no_write:
            print("wrote", write(r, args))
        return 0 if passed(r) else 1
    finally:
        mail.stop.set()
        hosts.stop_all()
        for proc in proxies:
            proc.terminate()
        if hook_proc is not None:
            hook_proc.terminate()
        netns_down()
        try:
            stack.drop_database()
        except Exception as exc:  # noqa: BLE001 (teardown reports, never masks the run's own error)
            print(f"drop database: {exc}", file=sys.stderr)
        print(f"logs in {stack.tmp}", file=sys.stderr)


def exactly_once(c: dict[str, Any]) -> dict[str, bool]:
    n = c["accepted"]
    return {
        "requests": c["in_db"] == n and not c["flows_twice"] and not c["accepted_missing"],
        "resolved": c["resolutions"] == {1: n} and c["submitted_events"] == {1: n},
        "emails": c["emails"] == {1: n},
        "webhooks": c["hook_distinct_ids"] == {1: 2 * n} and c["deliveries"] == {"delivered": 2 * n},
    }


def passed(r: dict[str, Any]) -> bool:
    return r["audit"]["ok"] and all(all(exactly_once(r[f"check_{p}"]).values()) for p in "ABC")


def write(r: dict[str, Any], args: argparse.Namespace) -> Path:
    def yes(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def counts(c: dict[Any, int]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))) or "none"

    a, b = r["A"], r["B"]
    rows = []
    for phase, label in (("A", "one app host"), ("B", "two app hosts"), ("C", "two, host 2 killed")):
        f = r[phase]
        rows.append(
            [
                f"{phase}: {label}",
                f"{f['offered']:g}",
                f"{f['seconds']:g}",
                f"{f['accepted_rate']:.2f}",
                f"{f['answered_rate']:.2f}",
                f"{f['create_p50']:.0f} / {f['create_p99']:.0f}",
                f"{f['answer_p50']:.0f} / {f['answer_p99']:.0f}",
                r[f"check_{phase}"]["failovers"],
                f"{f['load_avg']:.1f}",
            ]
        )
    rows.append(
        [
            "**B ÷ A**",
            "",
            "",
            f"**{b['accepted_rate'] / a['accepted_rate']:.2f}**",
            f"**{b['answered_rate'] / a['answered_rate']:.2f}**",
            f"{b['create_p50'] / a['create_p50']:.2f} / {b['create_p99'] / a['create_p99']:.2f}",
            f"{b['answer_p50'] / a['answer_p50']:.2f} / {b['answer_p99'] / a['answer_p99']:.2f}",
            "",
            "",
        ]
    )
    throughput = table(
        [
            "phase",
            "offered /s",
            "load s",
            "accepted /s",
            "answered /s",
            "create p50 / p99 ms",
            "answer p50 / p99 ms",
            "retries on the other host",
            "load avg",
        ],
        rows,
    )
    if "capacity_A" in r:
        ca, cb = r["capacity_A"], r["capacity_B"]
        cap_rows = [
            [label, f"{c['rate']:.1f}", f"{c['p50']:.0f} / {c['p99']:.0f}", c["errors"], f"{c['load_avg']:.1f}"]
            for label, c in (("A: one app host", ca), ("B: two app hosts", cb))
        ]
        cap_rows.append(["**B ÷ A**", f"**{cb['rate'] / ca['rate']:.2f}**", "", "", ""])
        throughput += (
            f"\n\nCapacity, closed loop ({args.capacity_clients} connections creating back to back for "
            f"{args.capacity_seconds:g} s, spread over the live hosts, no answers):\n\n"
            + table(["phase", "creates /s", "p50 / p99 ms", "non-201", "load avg"], cap_rows)
        )
    once_rows = []
    for phase in "ABC":
        k = r[f"check_{phase}"]
        ok = exactly_once(k)
        once_rows.append(
            [
                phase,
                k["accepted"],
                k["lost_creates"],
                f"{k['in_db']} ({k['flows_twice']} twice, {k['created_unseen']} unseen) {yes(ok['requests'])}",
                f"{counts(k['resolutions'])}; events {counts(k['submitted_events'])} {yes(ok['resolved'])}",
                f"{counts(k['emails'])} {yes(ok['emails'])}",
                f"{counts(k['hook_distinct_ids'])}; rows {counts(k['deliveries'])} {yes(ok['webhooks'])}",
                f"{k['redelivered_ids']} ids, {k['redelivered_receipts']} extra receipts",
                counts(k["stuck_keys"]),
            ]
        )
    once = table(
        [
            "phase",
            "accepted (201)",
            "creates given up",
            "requests in DB, once per flow_id",
            "Resolution rows per request; response.submitted events",
            "notification emails per request",
            "distinct webhook-ids per (request, event); delivery rows",
            "redelivered (same webhook-id)",
            "idempotency keys held by a dead call",
        ],
        once_rows,
    )
    k = r["check_C"]
    body = f"""**Method.** See the docstring of `tests/bench/multihost.py`: two app hosts (network namespaces
`hitl-app1`, `hitl-app2`, each `manage.py serve` with 2 × 4 threads + `manage.py worker` with 2 processes),
the database + broker host = the root namespace (PostgreSQL 127.0.0.1 reached at 127.2.0.1 through a 1 ms
proxy, Redis likewise); {r["delay"]}. Open loop at {args.rate:g} creates/s split round robin across the
live hosts, failover to the other host with the same `Idempotency-Key`; each request answered once its
email arrived (≥ {args.answer_after:g} s, ≤ {args.answer_timeout:g} s after the create). All of it (both
"hosts", PostgreSQL, Redis, proxies, load, receiver) on the same 2 vCPUs, which other engineers' jobs were
also using (load average {r["load_avg_before"]:.1f} before, {r["load_avg_after"]:.1f} after).

**Throughput, one app host vs two** (accepted = 201 received per second of load; latency from each
request's due time):

{throughput}

**Kill.** {args.kill_at:g} s into phase C, SIGKILL to all {r["kill"]["processes"]} processes of `hitl-app2`
(gunicorn master and workers, the worker's master, sentinel, pusher, workers, monitor) at once. Recovery:
no pending delivery and an empty Redis queue {r["recovered_after_kill_s"]:.0f} s after the kill
(settled: {r["settle_C"][0]}).

**Exactly once** (after recovery):

{once}

Emails missing in C: {counts(k["missed_emails_when"])} (accepted by host {counts(k["missed_emails_hosts"])};
`notified_at` set on {k["missed_notified_at_set"]} of them); answered before any email arrived:
{k["answered_before_email"]}. `manage.py audit_verify`: {"passed" if r["audit"]["ok"] else "**FAILED**"}
({" ".join(r["audit"]["out"])}). Tracebacks in the hosts' logs: {counts(r["tracebacks"])}.
"""
    return write_section("multihost", "More machines: two app hosts, one killed mid-load (issue 21)", body)


if __name__ == "__main__":
    sys.exit(main())
