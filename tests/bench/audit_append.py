"""Audit appends per second with 1, 4, 16 and 64 concurrent writers on PostgreSQL (issue 16).

    .venv/bin/python tests/bench/audit_append.py [--database hitl_a] [--seconds 3] [--no-netem] [--no-write]

Three schemes, each writer a forked process running `transaction.atomic(): <append one event>` in a loop:
- **old**: the chain before issue 16 (advisory lock held until COMMIT, read of the chain's end, unkeyed
  SHA-256, insert), copied here as it was;
- **new**: `audit.services.record_event` (one INSERT, no lock), with the sealer running as in production
  (`seal_events()` every second, in its own process); the unsealed backlog is sampled every 0.25 s and the
  time to drain it after the writers stop is measured;
- **bare**: the same row inserted with the ORM and nothing else.
Then, unless `--no-netem`, old and new again with the writers in their own network namespace (veth pair
with 127.1.0.x addresses, `tc netem delay 1ms` on the namespace's side, socat in the root namespace
forwarding 127.1.0.1:5432 to the database's 127.0.0.1:5432, which is all PostgreSQL listens on).
The table is emptied between runs (triggers lifted for that). Writes results/audit_append.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

WRITERS = (1, 4, 16, 64)
NS, VETH_ROOT, VETH_NS = "hitl_a_ns", "hitla0", "hitla1"
ROOT_ADDR, NS_ADDR = "127.1.0.1", "127.1.0.2"


def setup(database_url: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="hitl.settings",
        SECRET_KEY="bench-audit-secret-key-not-for-production",
        HITL_AUDIT_KEY="bench-audit-hmac-key",
        HITL_BASE_URL="http://127.0.0.1:8000",
    )
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def old_append() -> None:
    """audit.services.record_event before issue 16."""
    from django.db import connection
    from django.utils import timezone

    from audit.models import GENESIS_HASH, AuditEvent

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x48_49_54_4C])
        cursor.execute("SELECT hash FROM audit_auditevent ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    event = AuditEvent(**row_fields(timezone.now()), prev_hash=row[0] if row else GENESIS_HASH)
    event.hash = hashlib.sha256(json.dumps(event.hashed_fields(), sort_keys=True).encode()).hexdigest()
    event.save(force_insert=True)


def row_fields(now: Any) -> dict[str, Any]:
    return {
        "created_at": now,
        "event_type": "response.submitted",
        "actor": "reviewer@example.com",
        "source": "api",
        "target_type": "hitlrequest",
        "target_id": "00000000-0000-4000-8000-000000000001",
        "deployment_id": 1,
        "data": {"status": "responded", "outcome": "approved"},
    }


def new_append() -> None:
    from audit.services import record_event

    fields = row_fields(None)
    fields.pop("created_at")
    record_event(fields.pop("event_type"), **fields)


def bare_append() -> None:
    from django.utils import timezone

    from audit.models import AuditEvent

    AuditEvent(**row_fields(timezone.now())).save(force_insert=True)


APPENDS = {"old": old_append, "new": new_append, "bare": bare_append}


def writer(scheme: str, start: Any, stop_at: Any, counts: Any, index: int) -> None:
    from django.db import connection, transaction

    append = APPENDS[scheme]
    connection.ensure_connection()
    start.wait()
    n = 0
    while time.monotonic() < stop_at.value:
        with transaction.atomic():
            append()
        n += 1
    counts[index] = n
    connection.close()


def sealer(stop: Any, interval: float) -> None:
    from django.db import connection

    from audit.services import seal_events

    while not stop.wait(interval):
        seal_events()
    connection.close()


def reset() -> None:
    from django.db import connection

    from audit.lib.triggers import triggers_disabled

    with triggers_disabled(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent RESTART IDENTITY")


def unsealed() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_auditevent WHERE seq IS NULL")
        return int(cursor.fetchone()[0])


def run(scheme: str, writers: int, seconds: float) -> dict[str, Any]:
    from django import db

    reset()
    db.connections.close_all()
    ctx = multiprocessing.get_context("fork")
    start, stop_sealer = ctx.Event(), ctx.Event()
    stop_at = ctx.Value("d", 0.0)
    counts = ctx.Array("l", writers)
    procs = [ctx.Process(target=writer, args=(scheme, start, stop_at, counts, i)) for i in range(writers)]
    for proc in procs:
        proc.start()
    seal_proc = ctx.Process(target=sealer, args=(stop_sealer, 1.0)) if scheme == "new" else None
    if seal_proc:
        seal_proc.start()
    time.sleep(1.0 + writers * 0.02)  # every writer connected
    began = time.monotonic()
    stop_at.value = began + seconds
    start.set()
    backlog: list[int] = []
    while time.monotonic() < began + seconds:
        time.sleep(0.25)
        if scheme == "new":
            backlog.append(unsealed())
    for proc in procs:
        proc.join()
    total = sum(int(c) for c in counts[:])
    result: dict[str, Any] = {"scheme": scheme, "writers": writers, "appends": total, "rate": total / seconds}
    if seal_proc:
        drain_start = time.monotonic()
        while unsealed() and time.monotonic() - drain_start < 60:
            time.sleep(0.05)
        result["drain_s"] = time.monotonic() - drain_start
        result["max_backlog"] = max(backlog, default=0)
        stop_sealer.set()
        seal_proc.join()
        from audit.services import verify_chain

        checked, broken = verify_chain()
        assert broken is None and checked == total, (checked, broken, total)
    db.connections.close_all()
    return result


def sh(*argv: str, check: bool = True) -> None:
    subprocess.run(argv, check=check, capture_output=True)  # noqa: S603


def netns_up() -> subprocess.Popen[bytes]:
    netns_down()
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", VETH_ROOT, "type", "veth", "peer", "name", VETH_NS)
    sh("ip", "link", "set", VETH_NS, "netns", NS)
    sh("sysctl", "-qw", f"net.ipv4.conf.{VETH_ROOT}.route_localnet=1")
    sh("ip", "addr", "add", f"{ROOT_ADDR}/30", "dev", VETH_ROOT)
    sh("ip", "link", "set", VETH_ROOT, "up")
    sh("ip", "netns", "exec", NS, "sysctl", "-qw", f"net.ipv4.conf.{VETH_NS}.route_localnet=1")
    sh("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NS_ADDR}/30", "dev", VETH_NS)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", VETH_NS, "up")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
    netem = subprocess.run(  # noqa: S603
        ["ip", "netns", "exec", NS, "tc", "qdisc", "add", "dev", VETH_NS, "root", "netem", "delay", "1ms"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if netem.returncode == 0:
        DELAY["how"] = "tc netem delay 1ms on the namespace's veth"
        argv = ["socat", f"TCP-LISTEN:5432,bind={ROOT_ADDR},fork,reuseaddr", "TCP:127.0.0.1:5432"]
    else:
        # This kernel has no sch_netem (no modules, no modprobe): the same 1 ms on the way to the database,
        # added by the forwarding proxy instead.
        DELAY["how"] = f"1 ms added by a forwarding proxy (tc netem refused: {netem.stderr.strip()})"
        argv = [sys.executable, __file__, "--proxy"]
    proxy = subprocess.Popen(argv)  # noqa: S603
    time.sleep(1.0)
    return proxy


DELAY: dict[str, str] = {"how": ""}


def delay_proxy() -> None:
    """127.1.0.1:5432 → 127.0.0.1:5432, each chunk towards the database held 1 ms (order kept)."""
    import asyncio

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 5432)
        await asyncio.gather(pipe(client_r, server_w, 0.001), pipe(server_r, client_w, 0.0), return_exceptions=True)

    async def serve() -> None:
        server = await asyncio.start_server(handle, ROOT_ADDR, 5432)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def netns_down() -> None:
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "link", "del", VETH_ROOT, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_a")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--schemes", default="old,new,bare")
    parser.add_argument("--no-netem", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only (the netns run)")
    parser.add_argument("--proxy", action="store_true", help="run the 1 ms forwarding proxy (internal)")
    parser.add_argument("--netem-only", action="store_true")
    args = parser.parse_args()
    if args.proxy:
        delay_proxy()
        return
    setup(f"postgres://postgres@{args.host}:5432/{args.database}")
    results = [] if args.netem_only else [run(s, n, args.seconds) for n in WRITERS for s in args.schemes.split(",")]
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        print(json.dumps(r))
    netem: list[dict[str, Any]] = []
    if not args.no_netem:
        proxy = netns_up()
        try:
            done = subprocess.run(  # noqa: S603
                [
                    "ip",
                    "netns",
                    "exec",
                    NS,
                    sys.executable,
                    __file__,
                    "--host",
                    ROOT_ADDR,
                    "--database",
                    args.database,
                    "--seconds",
                    str(args.seconds),
                    "--schemes",
                    "old,new",
                    "--json",
                ],  # fmt: skip
                capture_output=True,
                text=True,
                check=True,
            )
            netem = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            proxy.terminate()
            netns_down()
        for r in netem:
            print("netem", json.dumps(r))
    reset()
    if not args.no_write:
        write(results, netem)


def write(results: list[dict[str, Any]], netem: list[dict[str, Any]]) -> None:
    from tests.bench._stack import table, write_section

    if not results:
        return
    by = {(r["scheme"], r["writers"]): r for r in results}
    rows = []
    for n in WRITERS:
        bare, old, new = by[("bare", n)]["rate"], by[("old", n)]["rate"], by[("new", n)]
        rows.append(
            [
                n,
                f"{bare:.0f}",
                f"{old:.0f}",
                f"{new['rate']:.0f}",
                f"{old / bare:.2f}",
                f"{new['rate'] / bare:.2f}",
                new["max_backlog"],
                f"{new['drain_s']:.2f}",
            ]  # fmt: skip
        )
    body = table(
        ["writers", "bare /s", "old /s", "new /s", "old ÷ bare", "new ÷ bare", "max unsealed", "drain s"], rows
    )
    if netem:
        nby = {(r["scheme"], r["writers"]): r for r in netem}
        nrows = [
            [
                n,
                f"{nby[('old', n)]['rate']:.0f}",
                f"{nby[('new', n)]['rate']:.0f}",
                f"{nby[('new', n)]['rate'] / nby[('old', n)]['rate']:.1f}",
                nby[("new", n)]["max_backlog"],
            ]  # fmt: skip
            for n in WRITERS
        ]
        body += f"\n\nWith 1 ms added latency (writers in their own network namespace; {DELAY['how']}):\n\n" + table(
            ["writers", "old /s", "new /s", "new ÷ old", "max unsealed"], nrows
        )
    write_section("audit_append", "Audit appends: old chain lock vs unsealed insert + sealer vs bare insert", body)


if __name__ == "__main__":
    main()
