"""Peak memory of the audit export as the log grows: it must stay flat (issue 7).

    .venv/bin/python tests/bench/audit_export_memory.py                      # SQLite in a temp dir
    .venv/bin/python tests/bench/audit_export_memory.py --database-url postgres://postgres@127.0.0.1:5432/hitl_bench
    .venv/bin/python tests/bench/audit_export_memory.py --sizes 10000 100000 300000 --markdown

The parent process migrates a scratch database and grows the audit log step by step (bulk inserts with
a correctly chained hash). At each size a fresh child process runs each export once and reports:
the Python heap peak during the export (tracemalloc), the process's peak RSS (ru_maxrss), the time and
the bytes produced. Exports measured: `GET /api/v1/audit/?format=jsonl|csv` through Django's test
client (the real URL, auth, view and StreamingHttpResponse; chunks are consumed and dropped as a
client would), `manage.py audit_export` to /dev/null, and, for contrast, a naive export that loads
every row first. The scratch database is dropped (PostgreSQL) or deleted (SQLite) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODES = ("api-jsonl", "api-csv", "command-jsonl", "naive-jsonl")


def _django(database_url: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="hitl.settings",
        SECRET_KEY="bench-secret",
        ALLOWED_HOSTS="testserver",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DEBUG", None)  # DEBUG would keep every query in memory
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def grow(target: int) -> int:
    """Append events until the log holds `target`, then seal them as the sealer would (audit_verify
    passes on the result); returns the count."""
    from audit.models import AuditEvent
    from audit.services import seal_events

    have = AuditEvent.objects.count()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    while have < target:
        batch = []
        for i in range(have, min(target, have + 5000)):
            event = AuditEvent(
                created_at=start + timedelta(seconds=i),
                event_type="response.submitted",
                actor=f"reviewer{i % 50}@example.com",
                source=("email", "dashboard", "api")[i % 3],
                target_type="hitlrequest",
                target_id=f"00000000-0000-4000-8000-{i:012d}",
                deployment_id=1 + i % 4,
                data={"status": "responded", "outcome": "approved", "responder": f"reviewer{i % 50}@example.com"},
            )
            batch.append(event)
        AuditEvent.objects.bulk_create(batch)
        have += len(batch)
    seal_events()
    return have


def measure(mode: str) -> dict[str, Any]:
    """Run one export in this (fresh) process; memory is measured around the export only."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from audit.lib.export import jsonl_line, record_of
    from audit.models import AuditEvent

    user = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-password"
    )
    client = Client()
    client.force_login(user)
    # Warm up (imports, URL resolution, first queries) on an empty selection, outside the measurement.
    newest = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if mode.startswith("api-"):
        warm: Any = client.get(f"/api/v1/audit/?format={mode.split('-')[1]}&after_id={newest + 1000}")
        b"".join(warm.streaming_content)
    elif mode == "command-jsonl":
        with open(os.devnull, "w") as sink:
            call_command("audit_export", output=os.devnull, after_id=newest + 1000, stdout=sink, stderr=sink)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    produced = 0
    if mode.startswith("api-"):
        response: Any = client.get(f"/api/v1/audit/?format={mode.split('-')[1]}")
        assert response.status_code == 200, response.status_code
        for chunk in response.streaming_content:
            produced += len(chunk)
        response.close()
    elif mode == "command-jsonl":
        with open(os.devnull, "w") as sink:
            call_command("audit_export", output=os.devnull, stdout=sink, stderr=sink, no_progress=True)
        produced = -1
    else:  # naive: what the export would cost if it loaded everything first
        rows = list(AuditEvent.objects.order_by("id").values())
        produced = len("".join(jsonl_line(record_of(dict(row))) for row in rows).encode())
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "events": AuditEvent.objects.count(),
        "seconds": round(seconds, 2),
        "heap_peak_mib": round(peak / 2**20, 2),
        "rss_peak_mib": round(rss_after / 1024, 1),
        "rss_growth_mib": round((rss_after - rss_before) / 1024, 1),
        "bytes": produced,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| events | export | time (s) | Python heap peak (MiB) | process RSS peak (MiB) | RSS growth (MiB) "
        "| output (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        size = f"{r['bytes'] / 2**20:.1f}" if r["bytes"] >= 0 else "—"
        lines.append(
            f"| {r['events']:,} | {r['mode']} | {r['seconds']} | {r['heap_peak_mib']} | {r['rss_peak_mib']} "
            f"| {r['rss_growth_mib']} | {size} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for tests/bench/RESULTS.md)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: one mode
    args = parser.parse_args()

    if args.measure:
        _django(args.database_url)
        print(json.dumps(measure(args.measure)))
        return

    scratch = tempfile.TemporaryDirectory(prefix="hitl-bench-")
    url = args.database_url or f"sqlite:///{scratch.name}/bench.sqlite3"
    postgres = url.startswith("postgres")
    if postgres:
        _create_postgres(url)
    _django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = []
    try:
        for size in args.sizes:
            grow(size)
            for mode in args.modes:
                child = subprocess.run(
                    [sys.executable, __file__, "--database-url", url, "--measure", mode],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(child.stdout.strip().splitlines()[-1])
                results.append(result)
                print(json.dumps(result), file=sys.stderr)
        call_command("audit_verify", stdout=sys.stderr)
    finally:
        from django.db import connections

        connections.close_all()
        if postgres:
            _drop_postgres(url)
        scratch.cleanup()
    database = "PostgreSQL" if postgres else "SQLite"
    print(f"\n{database}, {platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    print(table(results) if args.markdown else json.dumps(results, indent=2))


def _admin_connection(url: str) -> Any:
    import psycopg

    base, _, name = url.rpartition("/")
    return psycopg.connect(f"{base}/postgres", autocommit=True), name


def _create_postgres(url: str) -> None:
    connection, name = _admin_connection(url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def _drop_postgres(url: str) -> None:
    connection, name = _admin_connection(url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
