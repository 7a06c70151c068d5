"""Webhook fan-out: N deliveries to a receiver on 127.0.0.1 with 2 workers — rate, latency, exactly once.

    .venv/bin/python tests/bench/fanout.py                         # 5,000 deliveries, live and backlog
    .venv/bin/python tests/bench/fanout.py --deliveries 1000 --modes live --no-write
    .venv/bin/python tests/bench/fanout.py --profile 500           # attempts in this process: queries, pyinstrument

The stack is production's: scratch PostgreSQL database `hitl_bench_workers` (dropped at the end), Redis
db 7 as the broker, one `manage.py qcluster` with HITL_Q_WORKERS=2, settings from environment variables
(DEBUG=0, HITL_EGRESS_ALLOWED_HOSTS=127.0.0.1 so plain HTTP to the local receiver is allowed).

Events come from the services every channel uses: N/2 requests created (`create_request`, a
`new_request` delivery each) and answered (`respond_to_request`, a `request_responded` delivery each) for
a deployment with one webhook subscribed to everything (email notifications off, so the workers do
webhook work only). The receiver is a separate process (a ThreadingHTTPServer, so its work does not
share a GIL with the producer) that checks every Standard Webhooks signature, answers 200, and counts
deliveries per `webhook-id`.

Two modes. *live*: the workers run while the producer creates and answers requests; end-to-end time is
from the first event to the last delivery marked delivered. *backlog*: every event is produced first
(the tasks wait on Redis), then the cluster starts; the time is from the cluster's start to the last
delivery marked delivered: the workers' own throughput.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import multiprocessing
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import Stack, percentile, table, wait_until, write_section  # noqa: E402

RECEIVER_PORT = 8302


# --- the receiver (its own process) -----------------------------------------------------------------


def _verify(key: bytes, headers: Any, body: bytes) -> bool:
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))."""
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    signatures = [part.split(",", 1)[-1].encode() for part in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, sig) for sig in signatures)


def serve(secret: str, port: int, ready: Any) -> None:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    lock = threading.Lock()
    seen: Counter[str] = Counter()
    stats: dict[str, Any] = {"received": 0, "bad_signature": 0, "first": 0.0, "last": 0.0, "events": Counter()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive when the client wants it

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ok = _verify(key, self.headers, body)
            now = time.time()
            with lock:
                stats["received"] += 1
                stats["first"] = stats["first"] or now
                stats["last"] = now
                if ok:
                    seen[self.headers["webhook-id"]] += 1
                    stats["events"][json.loads(body).get("event", "?")] += 1
                else:
                    stats["bad_signature"] += 1
            self._answer(200 if ok else 400, b"ok")

        def do_GET(self) -> None:
            with lock:
                dup = {k: n for k, n in seen.items() if n > 1}
                report = {**stats, "unique": len(seen), "duplicates": sum(n - 1 for n in dup.values())}
                report["events"] = dict(stats["events"])
            self._answer(200, json.dumps(report).encode())

        def _answer(self, status: int, reply: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    ready.set()
    server.serve_forever(poll_interval=0.05)


def receiver_stats(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


# --- the producer -------------------------------------------------------------------------------------


def setup(port: int) -> tuple[Any, str]:
    from accounts.services import create_deployment
    from hitl.channels import webhook_outbox

    deployment = create_deployment(name="Fan-out bench", creator_email="lead@example.com")
    deployment.email_notifications = False
    deployment.save()
    webhook, secret = webhook_outbox.create_webhook(
        deployment, url=f"http://127.0.0.1:{port}/hooks/hitl", actor="bench", name="receiver"
    )
    return deployment, secret


def produce(deployment: Any, events: int) -> float:
    """events/2 requests created and answered through the services; returns seconds taken."""
    from hitl import services

    started = time.monotonic()
    for i in range(events // 2):
        request = services.create_request(
            deployment,
            {"message": f"Review item {i}?", "emit_options": ["approved", "rejected"], "state": {"item": i}},
            actor="api-key:bench",
        )
        services.respond_to_request(
            request.pk, services.Answer(outcome="approved", feedback="ok"), responder="bench@example.com", source="api"
        )
    return time.monotonic() - started


def delivered() -> int:
    from hitl.models import DeliveryStatus, WebhookDelivery

    return WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count()


def db_checks(expected: int) -> dict[str, Any]:
    from django.db.models import Count, Max, Min

    from audit.models import AuditEvent, EventType
    from hitl.models import WebhookAttempt, WebhookDelivery

    statuses = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("id")))
    attempts = Counter(WebhookDelivery.objects.annotate(n=Count("attempts")).values_list("n", flat=True))
    span = WebhookDelivery.objects.aggregate(
        first_created=Min("created_at"), last_created=Max("created_at"), last_delivered=Max("delivered_at")
    )
    latencies = [
        (d - c).total_seconds()
        for c, d in WebhookDelivery.objects.filter(delivered_at__isnull=False).values_list("created_at", "delivered_at")
        if d is not None
    ]
    return {
        "deliveries": sum(statuses.values()),
        "statuses": statuses,
        "attempts_per_delivery": dict(attempts),
        "failed_attempts": WebhookAttempt.objects.exclude(status_code=200).count(),
        "delivered_events": AuditEvent.objects.filter(event_type=EventType.WEBHOOK_DELIVERED).count(),
        "expected": expected,
        "latency_median": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "latency_max": max(latencies) if latencies else float("nan"),
        **span,
    }


def reset() -> None:
    """Empty the requests and deliveries between modes (the audit log stays: append-only)."""
    from hitl.models import HITLRequest, Resolution, WebhookDelivery

    WebhookDelivery.objects.all().delete()
    Resolution.objects.all().delete()
    HITLRequest.objects.all().delete()


def run_mode(args: argparse.Namespace, mode: str, deployment: Any, port: int) -> dict[str, Any]:
    stack: Stack = args.stack
    before = receiver_stats(port)
    if mode == "live":
        stack.start_qcluster()
        t0 = time.monotonic()
        produced = produce(deployment, args.deliveries)
    else:
        produced = produce(deployment, args.deliveries)
        t0 = time.monotonic()
        stack.start_qcluster(probe=False)  # the probe would queue behind the backlog
    done = wait_until(lambda: delivered() >= args.deliveries, timeout=args.timeout, interval=0.2)
    wall = time.monotonic() - t0
    time.sleep(1)  # a duplicate would arrive now, if at all
    stack.stop("qcluster")
    after = receiver_stats(port)
    checks = db_checks(args.deliveries)
    # backlog: from the cluster's start (startup included) to the last delivery counted
    span = (checks["last_delivered"] - checks["first_created"]).total_seconds() if mode == "live" else wall
    received = {
        "received": after["received"] - before["received"],
        "unique": after["unique"] - before["unique"],
        "duplicates": after["duplicates"] - before["duplicates"],
        "bad_signature": after["bad_signature"] - before["bad_signature"],
        "receiver_span": after["last"] - max(after["first"], before["last"] or after["first"]),
    }
    return {"mode": mode, "done": done, "produce_seconds": produced, "wall": wall, "span": span, **received, **checks}


def profile(args: argparse.Namespace, deployment: Any, port: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from hitl.channels import webhook_outbox
    from hitl.models import WebhookDelivery

    produce(deployment, args.profile)  # no cluster: the tasks just wait on Redis (flushed at the end)
    ids = list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True))
    profiler = Profiler(interval=0.0005)
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        profiler.start()
        for pk in ids:
            webhook_outbox.attempt_delivery(pk)
        profiler.stop()
        elapsed = time.monotonic() - started
    text = profiler.output_text(unicode=True, color=False)
    out = args.stack.tmp / "fanout-profile.txt"
    out.write_text(text)
    print(
        f"{len(ids)} attempts in-process: {elapsed:.2f}s ({elapsed / len(ids) * 1000:.2f} ms each), "
        f"{len(queries)} queries ({len(queries) / len(ids):.1f} per delivery); delivered {delivered()}"
    )
    print("\n".join(text.splitlines()[:70]))


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    rows = []
    ok = True
    for r in results:
        exact = (
            r["done"]
            and r["unique"] == r["expected"]
            and r["duplicates"] == 0
            and r["bad_signature"] == 0
            and r["statuses"] == {"delivered": r["expected"]}
            and r["delivered_events"] >= r["expected"]
        )
        ok = ok and exact
        rows.append(
            [
                r["mode"],
                f"{r['expected']:,}",
                f"{r['span']:.1f}",
                f"**{r['expected'] / r['span']:.0f}**",
                f"{r['produce_seconds']:.1f} ({r['expected'] / r['produce_seconds']:.0f}/s)",
                f"{r['latency_median'] * 1000:.0f} / {r['latency_p95'] * 1000:.0f} / {r['latency_max'] * 1000:.0f}",
                f"{r['unique']:,} / {r['duplicates']} / {r['bad_signature']}",
                ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()),
                ", ".join(f"{k}×: {v:,}" for k, v in sorted(r["attempts_per_delivery"].items())),
                "yes" if exact else "**no**",
            ]
        )
    return f"""**Variant.** {args.label or "current code"}

**Method.** See the docstring of `tests/bench/fanout.py`: {args.deliveries:,} deliveries ({args.deliveries // 2:,}
requests created and answered through the services, one webhook subscribed), `qcluster` with
`HITL_Q_WORKERS=2`, Redis broker, PostgreSQL, receiver in its own process on 127.0.0.1 checking every
signature. Rate = deliveries / time; *live* time runs from the first event to the last `delivered_at`
(the producer, on the same 2 cores, is part of it); *backlog* time from the cluster's start (about 2 s of
startup included) to the last delivery counted. Latency = `delivered_at − created_at` per delivery.

**Figures.**

{
        table(
            [
                "mode",
                "deliveries",
                "time (s)",
                "deliveries/s",
                "producing (s)",
                "latency median / p95 / max (ms)",
                "receiver: unique / duplicates / bad sig.",
                "DB status",
                "attempts per delivery",
                "exactly once",
            ],
            rows,
        )
    }

**Goal.** Every delivery delivered exactly once from the receiver's point of view (deduplicated by
`webhook-id`), signed correctly, and marked delivered, with one attempt each. **Met?**
{"**Yes.**" if ok else "**No.**"}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--modes", nargs="+", default=["live", "backlog"], choices=["live", "backlog"])
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", type=int, default=0, help="profile N attempts in this process")
    parser.add_argument("--database", default="hitl_bench_workers")
    parser.add_argument("--label", default="")
    parser.add_argument("--append", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    args.stack = stack = Stack(database=args.database, redis_db=7, workers=2, HITL_WEBHOOK_RETRY_BASE="5")
    stack.create_database()
    stack.setup_django()
    receiver = None
    try:
        deployment, secret = setup(RECEIVER_PORT)
        ready = multiprocessing.Event()
        receiver = multiprocessing.Process(target=serve, args=(secret, RECEIVER_PORT, ready), daemon=True)
        receiver.start()
        ready.wait(10)
        if args.profile:
            profile(args, deployment, RECEIVER_PORT)
            return
        results = []
        for mode in args.modes:
            reset()
            stack.flush_redis()
            result = run_mode(args, mode, deployment, RECEIVER_PORT)
            print(result, flush=True)
            results.append(result)
        if not args.no_write:
            title = f"Webhook fan-out, 2 workers{f' — {args.label}' if args.label else ''}"
            print(f"wrote {write_section('fanout', title, markdown(results, args), append=args.append)}")
    finally:
        stack.stop_all()
        if receiver is not None:
            receiver.terminate()
        stack.drop_database()


if __name__ == "__main__":
    main()
