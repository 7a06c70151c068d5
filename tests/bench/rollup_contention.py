"""Does the rollup upsert serialise concurrent writers? (issue 21, SPEC §19; PostgreSQL)

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench_contention REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python tests/bench/rollup_contention.py --processes 4 --duration 10

Every create of the same deployment, flow, method and reviewer on the same day upserts the same two
rollup rows (its day and its week), whose row locks are held until COMMIT: the worst case for
contention. `--processes` processes call `create_request` in a loop for `--duration` seconds, once
with the rollups as the services keep them and once with `count_created` replaced by a no-op; the
script reports creates per second and, sampled every 20 ms from `pg_stat_activity`, the average
number of backends waiting on a lock. The database must exist and be migrated (it is not dropped).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("ANYMAIL_WEBHOOK_SECRET", "bench:bench")
os.environ.setdefault("HITL_BASE_URL", "http://127.0.0.1:8000")

QUERY = (
    "select coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-') from pg_stat_activity "
    "where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend' "
    "and state = 'active'"
)


def _worker(deployment_id: int, rollups: bool, duration: float, barrier: Any, results: Any) -> None:
    import django

    django.setup()
    from accounts.models import Deployment
    from hitl.services import create_request
    from hitl.services import rollups as kept

    if not rollups:
        kept.count_created = lambda request: None  # type: ignore[assignment]
    deployment = Deployment.objects.get(pk=deployment_id)
    body = {"message": "Contention", "emit_options": ["approved", "rejected"], "method_name": "hot"}
    body["assign_to"] = "hot@bench.example"
    barrier.wait()
    done, ends = 0, time.monotonic() + duration
    while time.monotonic() < ends:
        create_request(deployment, dict(body), actor="bench", source="api")
        done += 1
    results.put(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from accounts.models import Deployment
    from accounts.services import create_deployment

    assert connection.vendor == "postgresql", "row-lock contention is PostgreSQL's question"
    deployment = Deployment.objects.filter(name="Contention").first() or create_deployment(
        name="Contention", creator_email="c@bench.example", organization="Bench Contention", actor="bench"
    )
    db = settings.DATABASES["default"]
    psql = ["psql", "-h", db["HOST"] or "127.0.0.1", "-U", db["USER"] or "postgres", "-d", db["NAME"], "-Atc", QUERY]
    connection.close()
    for rollups in (True, False, True):
        barrier = multiprocessing.Barrier(args.processes + 1)
        results: Any = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=_worker, args=(deployment.pk, rollups, args.duration, barrier, results))
            for _ in range(args.processes)
        ]
        for proc in procs:
            proc.start()
        barrier.wait()
        waits: collections.Counter[str] = collections.Counter()
        samples = 0
        stop = threading.Event()

        def sample(counter: collections.Counter[str] = waits, stop: threading.Event = stop) -> None:
            nonlocal samples
            while not stop.is_set():
                out = subprocess.run(psql, capture_output=True, text=True, check=False).stdout.split()
                counter.update(out)
                samples += 1
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        total = sum(results.get() for _ in procs)
        stop.set()
        sampler.join()
        for proc in procs:
            proc.join()
        locks = sum(n for state, n in waits.items() if state.startswith("Lock:")) / max(samples, 1)
        top = ", ".join(f"{k} {v / max(samples, 1):.2f}" for k, v in waits.most_common(4))
        print(
            f"rollups {'on ' if rollups else 'off'}: {total / args.duration:6.1f} creates/s with {args.processes} "
            f"processes; backends waiting on a lock: {locks:.2f} on average ({top})"
        )


if __name__ == "__main__":
    main()
