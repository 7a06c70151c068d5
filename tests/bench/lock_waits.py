"""What the app's database backends wait on while wrk drives create and respond (issue 8).

    .venv/bin/python tests/bench/lock_waits.py [--database hitl_bench_locks] [--port 8113] [--duration 10]

Brings up the same stack as `tests/bench/throughput.py` (its `Stack`: scratch database, gunicorn, qcluster,
Redis), runs wrk on create and on respond, and samples `pg_stat_activity` every 50 ms meanwhile: the
average number of the app's backends per sample in each `wait_event_type:wait_event:state`. A high
`Lock:advisory` count meant requests queued on the audit chain's lock (before issue 16; appends take no lock now);
`idle in transaction` is a backend whose Python side holds its transaction open. Drops the database.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import throughput  # noqa: E402

QUERY = (
    "select coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-') || ':' || replace(state, ' ', '_') "
    "from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() "
    "and backend_type = 'client backend'"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_bench_locks")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--port", type=int, default=8113)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    stack = throughput.Stack(args)
    stack.prepare()
    respond_paths, _ = stack.pending(4000)
    stack.start()
    auth = f"Bearer {stack.key}"
    body = json.dumps(
        {"message": "Please review", "emit_options": ["approved", "rejected"], "method_name": "review_content"}
    )
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", args.database, "-Atc", QUERY]
    try:
        for name, path, lua, env in (
            ("create", "/api/v1/requests/", throughput.LUA_POST, {"BODY": body, "AUTH": auth}),
            (
                "respond",
                "/",
                throughput.LUA_WALK,
                {"PATHS_FILE": str(respond_paths), "BODY": '{"outcome": "approved"}', "AUTH": auth},
            ),
        ):
            samples: collections.Counter[str] = collections.Counter()
            count = [0]
            done = threading.Event()

            def sample(
                samples: collections.Counter[str] = samples, count: list[int] = count, done: threading.Event = done
            ) -> None:
                while not done.is_set():
                    samples.update(subprocess.run(psql, capture_output=True, text=True, check=False).stdout.split())
                    count[0] += 1
                    time.sleep(0.05)

            thread = threading.Thread(target=sample)
            thread.start()
            result = stack.wrk(path, lua, **env)
            done.set()
            thread.join()
            print(f"{name}: {result['rps']:.1f} req/s; backends per sample ({count[0]} samples):")
            for state, n in samples.most_common(8):
                print(f"   {n / max(count[0], 1):5.2f}  {state}")
    finally:
        stack.stop()
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", args.database], check=False)


if __name__ == "__main__":
    main()
