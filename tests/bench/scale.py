"""Page and endpoint timings with a million requests in the database (issue 8).

    export DJANGO_SETTINGS_MODULE=tests.bench.settings
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench_scale .venv/bin/python manage.py bench_seed
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench_scale .venv/bin/python tests/bench/scale.py --markdown

Each case is one real URL (inbox page, list endpoint, analytics page and API) fetched through Django's
test client in this process — the URL resolver, middleware, authentication, `restrict()`, the view,
the template — as the person it names: `bench-manager` (manages every bench deployment, so sees every
seeded request), `bench-reviewer` (responds on them, sees what is assigned to them) or the seeded
API key. Three warm-up fetches, then `--repeat` timed fetches: p50, p95 and max wall time, and the
number of SQL queries of one fetch (which must not grow with the rows on the page or in the table).
Not measured here: the WSGI server and the network, about a millisecond on loopback (see
`tests/bench/throughput.py` for the whole stack under load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("ANYMAIL_WEBHOOK_SECRET", "bench:bench")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")

CASES: list[tuple[str, str, str, float]] = [
    # name, who, URL, goal in ms (p95)
    ("inbox: pending tab", "manager", "/inbox/", 100),
    ("inbox: all tab", "manager", "/inbox/?status=all", 100),
    ("inbox: responded, page 40 (the deepest)", "manager", "/inbox/?status=responded&page=40", 100),
    ("inbox: overdue only", "manager", "/inbox/?overdue=on", 100),
    ("inbox: one deployment, all", "manager", "/inbox/?status=all&deployment={deployment}", 100),
    ("inbox: reviewer, all", "reviewer", "/inbox/?status=all", 100),
    ("inbox: search", "manager", "/inbox/?status=all&q=item+0a1b", 0),
    ("list: first page", "manager", "/api/v1/requests/", 100),
    ("list: API key, pending", "key", "/api/v1/requests/?status=pending", 100),
    ("list: API key, responded, offset 5000", "key", "/api/v1/requests/?status=responded&offset=5000", 100),
    ("list: reviewer", "reviewer", "/api/v1/requests/?assigned_to=reviewer0@bench.example", 100),
    ("analytics API: last 30 days", "manager", "/api/v1/analytics/?days=30", 1500),
    ("analytics API: last 365 days", "manager", "/api/v1/analytics/?days=365", 1500),
    ("analytics page: last 30 days", "manager", "/analytics/?days=30", 1500),
    ("analytics page: last 365 days", "manager", "/analytics/?days=365", 1500),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--slow-repeat", type=int, default=5, help="fetches of the analytics cases")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from accounts.models import ApiKey, Deployment
    from hitl.models import HITLRequest

    User = get_user_model()
    clients: dict[str, Client] = {}
    for who, username in (("manager", "bench-manager"), ("reviewer", "bench-reviewer")):
        clients[who] = Client()
        clients[who].force_login(User.objects.get(username=username))
    deployment = Deployment.objects.filter(organization__name="Bench Org").order_by("pk").first()
    assert deployment is not None, "run `manage.py bench_seed` first"
    key = ApiKey.objects.get(deployment=deployment, name="bench")
    secret = os.environ.get("BENCH_API_KEY", "")
    if not secret:  # the seed prints the key once; mint a fresh one for this run
        from accounts.services import create_api_key

        _, secret = create_api_key(deployment, name=f"bench-scale-{int(time.time())}", actor="bench")
    del key
    clients["key"] = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    total = HITLRequest.objects.count()
    rows: list[dict[str, Any]] = []
    for name, who, url, goal in CASES:
        if args.only and args.only not in name:
            continue
        url = url.format(deployment=deployment.pk)
        client = clients[who]
        for _ in range(3):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.content[:500])
        # Counted with an execute wrapper: the test client's request_started signal resets
        # connection.queries, so CaptureQueriesContext would see none.
        queries: list[str] = []

        def count_query(execute: Any, sql: str, *rest: Any, seen: list[str] = queries) -> Any:
            seen.append(sql)
            return execute(sql, *rest)

        with connection.execute_wrapper(count_query):
            client.get(url)
        times = []
        for _ in range(args.slow_repeat if name.startswith("analytics") else args.repeat):
            started = time.perf_counter()
            response = client.get(url)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        row = {
            "case": name,
            "who": who,
            "url": url,
            "queries": len(queries),
            "p50": statistics.median(times),
            "p95": p95,
            "max": times[-1],
            "goal": goal,
        }
        rows.append(row)
        print(
            f"{name:42} {row['queries']:3} queries  p50 {row['p50']:8.1f}  p95 {p95:8.1f}  max {row['max']:8.1f} ms",
            file=sys.stderr,
        )
    if args.markdown:
        print(f"Requests in the database: {total:,} ({connection.vendor}).\n")
        print("| case | as | queries | p50 (ms) | p95 (ms) | max (ms) | goal (p95) | met |")
        print("|---|---|---:|---:|---:|---:|---|---|")
        for r in rows:
            goal_text = f"< {r['goal']:,.0f} ms" if r["goal"] else "—"
            met = "—" if not r["goal"] else ("yes" if r["p95"] < r["goal"] else "**no**")
            print(
                f"| {r['case']} | {r['who']} | {r['queries']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} "
                f"| {goal_text} | {met} |"
            )


if __name__ == "__main__":
    main()
