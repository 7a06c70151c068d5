"""An email reply to a flow's human step → the flow's next step done: how long? (issue 8)

    .venv/bin/python tests/bench/reply_latency.py  # 50 replies, writes results/reply_latency.md
    .venv/bin/python tests/bench/reply_latency.py --runs 10 --no-write

The stack is production's: scratch PostgreSQL database `hitl_bench_workers` (dropped at the end), Redis
db 7 as the broker, one `manage.py qcluster` (HITL_Q_WORKERS=2) and gunicorn (2 workers, port 8303) on
`hitl.wsgi`, all configured through environment variables (DEBUG=0, ANYMAIL_WEBHOOK_SECRET, the
`filebased` email backend: mail goes to files, no network).

Each round kicks off the demo flow `content_approval` (flows/demo.py) for a deployment it is attached
to, waits until the run pauses at `review_content` and the notification email has been written, reads
the `Reply-To: reply+<token>@…` address out of that email, and POSTs a Postmark inbound payload (the
shape tests/hitl/esp_payloads.py uses, modelled on Anymail's tests) answering "approved" from the
assignee's address to the real inbound URL `/anymail/postmark/inbound/` with the webhook's basic auth.
Measured: from just before the POST to the `publish_content` step's `finished_at` (the flow's next
step, run by a worker after the answer resumed the run), and its parts: the POST's own response time
(inbound parsing, the answer's transaction, the tasks put on Redis), answer committed → run resumed
(`flow.resumed` audit event), and resumed → next step finished.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import ANYMAIL_SECRET, Stack, percentile, table, wait_until, write_section  # noqa: E402
from tests.support.esp_payloads import postmark  # noqa: E402 - the Postmark inbound payload the tests post

PORT = 8303
ASSIGNEE = "lead@example.com"
REPLY_TO = re.compile(
    r"^Reply-To:\s+(?:.*?)(reply\+[a-z2-7]{26}-[0-9a-z]{1,8}-[a-z2-7]{20}@[a-z0-9.\-]+)", re.I | re.M | re.S
)


def token_request_id(address: str) -> uuid.UUID:
    encoded = address.split("+", 1)[1][:26].upper()
    return uuid.UUID(bytes=base64.b32decode(encoded + "=" * 6))


def find_reply_address(mail_dir: Path, request_id: uuid.UUID, seen: set[Path]) -> str | None:
    for path in sorted(mail_dir.iterdir()):
        if path in seen:
            continue
        seen.add(path)
        for match in REPLY_TO.finditer(path.read_text(errors="replace")):
            if token_request_id(match.group(1)) == request_id:
                return match.group(1)
        seen.discard(path)  # a file the backend may still be writing: look again next time
    return None


def post_reply(base_url: str, to: str) -> tuple[int, float]:
    body = "Approved!\n\nLooks good to me.\n\nOn Wed, Jan 14, 2026 HITL <hitl@localhost> wrote:\n> Please review\n"
    data = json.dumps(postmark(ASSIGNEE, to, body)).encode()
    request = urllib.request.Request(  # noqa: S310 (http to our own server)
        f"{base_url}/anymail/postmark/inbound/",
        data=data,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(ANYMAIL_SECRET.encode()).decode(),
        },
        method="POST",
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()
        return response.status, time.monotonic() - started


def one_round(stack: Stack, deployment: Any, seen: set[Path]) -> dict[str, float]:
    from audit.models import AuditEvent, EventType
    from flows.engine.runs import kickoff
    from flows.models import FlowRun, FlowStep, RunStatus
    from hitl.models import Resolution

    run = kickoff(deployment, flow="content_approval", inputs={"topic": "Q1"}, actor="api-key:bench")

    def waiting() -> bool:
        run.refresh_from_db()
        return run.status == RunStatus.WAITING and run.pending_request_id is not None

    assert wait_until(waiting, timeout=30, interval=0.02), f"run {run.pk} never paused: {run.status}"
    request_id = run.pending_request_id
    assert request_id is not None
    address = None

    def mailed() -> bool:
        nonlocal address
        address = find_reply_address(stack.mail_dir, request_id, seen)
        return address is not None

    assert wait_until(mailed, timeout=30, interval=0.02), "no notification email with a reply token"
    assert address is not None
    time.sleep(0.05)  # let the worker go idle: the reply arrives later than the email in real life

    posted_at = datetime.now(UTC)
    status, post_seconds = post_reply(stack.base_url, address)
    assert status == 200, status

    def next_step_done() -> bool:
        return FlowStep.objects.filter(run=run, method_name="publish_content", finished_at__isnull=False).exists()

    assert wait_until(next_step_done, timeout=30, interval=0.01), f"run {run.pk} did not go on"
    step = FlowStep.objects.get(run=run, method_name="publish_content")
    resolution = Resolution.objects.get(pk=request_id)
    resumed = AuditEvent.objects.get(event_type=EventType.FLOW_RESUMED, target_id=str(run.pk)).created_at
    assert resolution.source == "email" and resolution.outcome == "approved", resolution.result
    assert FlowRun.objects.get(pk=run.pk).status in (RunStatus.COMPLETED, RunStatus.RUNNING)
    assert step.finished_at is not None
    return {
        "total": (step.finished_at - posted_at).total_seconds(),
        "post": post_seconds,
        "answered_to_resumed": (resumed - resolution.created_at).total_seconds(),
        "resumed_to_step_done": (step.finished_at - resumed).total_seconds(),
    }


def summarize(rounds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = ["total", "post", "answered_to_resumed", "resumed_to_step_done"]
    return {
        k: {
            "median": percentile([r[k] for r in rounds], 50),
            "p95": percentile([r[k] for r in rounds], 95),
            "max": max(r[k] for r in rounds),
            "min": min(r[k] for r in rounds),
        }
        for k in keys
    }


def markdown(summary: dict[str, dict[str, float]], runs: int, label: str) -> str:
    names = {
        "total": "**reply POSTed → next step finished**",
        "post": "inbound POST response time (parse, answer, enqueue)",
        "answered_to_resumed": "answer committed → run resumed (a worker task)",
        "resumed_to_step_done": "run resumed → next step finished (another task)",
    }
    rows = [[names[k], *(f"{summary[k][q] * 1000:.0f}" for q in ("min", "median", "p95", "max"))] for k in names]
    return f"""**Variant.** {label}

**Method.** See the module docstring of `tests/bench/reply_latency.py`: {runs} rounds, one after another; each kicks
off `content_approval`, waits for the notification email, reads its Reply-To token and POSTs a Postmark
inbound reply ("Approved!") to gunicorn's `/anymail/postmark/inbound/`; `qcluster` with 2 workers on
the Redis broker, PostgreSQL. Times come from the database's own timestamps (Resolution.created_at, the
`flow.resumed` audit event, FlowStep.finished_at) against the wall clock just before the POST (same
machine, same clock).

**Figures** (milliseconds, {runs} rounds).

{table(["part", "min", "median", "p95", "max"], rows)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database", default="hitl_bench_workers")
    parser.add_argument("--label", default="")
    parser.add_argument("--append", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    stack = Stack(database=args.database, redis_db=7, workers=2, port=PORT)
    stack.create_database()
    stack.setup_django()
    try:
        from accounts.services import create_deployment
        from flows.services import attach_flows

        deployment = create_deployment(name="Reply bench", creator_email=ASSIGNEE, actor="bench")
        attach_flows(deployment, ["content_approval"], actor="bench")
        stack.start_server()
        stack.start_qcluster()
        seen: set[Path] = set()
        one_round(stack, deployment, seen)  # warm-up: imports, connections
        rounds = []
        for i in range(args.runs):
            rounds.append(one_round(stack, deployment, seen))
            if (i + 1) % 10 == 0:
                print(f"{i + 1} rounds; last: {rounds[-1]}", flush=True)
        summary = summarize(rounds)
        for key, values in summary.items():
            print(key, {q: round(v * 1000, 1) for q, v in values.items()})
        if not args.no_write:
            title = f"Email reply → the flow's next step{f' — {args.label}' if args.label else ''}"
            body = markdown(summary, args.runs, args.label or "current code")
            print(f"wrote {write_section('reply_latency', title, body, append=args.append)}")
    finally:
        stack.stop_all()
        stack.drop_database()


if __name__ == "__main__":
    main()
