"""Analytics at scale (issue 21, SPEC §19): the analytics API and page over a million requests, from the
rollups, for 30 days and a year, with and without filters.

    export DJANGO_SETTINGS_MODULE=tests.bench.settings HITL_BASE_URL=http://127.0.0.1:8000
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_bench_scale   # or sqlite:////tmp/x.sqlite3
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py bench_seed --requests 1000000     # rows straight into the tables …
    .venv/bin/python manage.py analytics_rebuild                  # … so their rollups are built after
    .venv/bin/python tests/bench/analytics_scale.py --markdown

Each case is one real URL fetched through Django's test client in this process (resolver, middleware,
authentication, the view, the template) as `bench-manager` (manages every bench deployment) or the
seeded API key (deployment 1 of 4). One warm-up fetch, then `--repeat` timed ones: p50, p95, max,
and the number of SQL queries of one fetch. `--profile` also times each figure of one report.
Goals: API < 1 s, page < 1.5 s.
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
os.environ.setdefault("HITL_BASE_URL", "http://127.0.0.1:8000")

API, PAGE = 1000, 1500
CASES: list[tuple[str, str, str, float]] = [
    # name, who, URL, goal in ms (p95)
    ("API: 30 days", "manager", "/api/v1/analytics/?days=30", API),
    ("API: 365 days", "manager", "/api/v1/analytics/?days=365", API),
    ("API: 365 days, daily buckets", "manager", "/api/v1/analytics/?days=365&bucket=day", API),
    ("API: 30 days, one reviewer", "manager", "/api/v1/analytics/?days=30&reviewer=reviewer0@bench.example", API),
    ("API: 365 days, one reviewer", "manager", "/api/v1/analytics/?days=365&reviewer=reviewer0@bench.example", API),
    ("API: 365 days, one flow", "manager", "/api/v1/analytics/?days=365&flow=content_approval", API),
    (
        "API: 365 days, deployment + method + reviewer",
        "manager",
        "/api/v1/analytics/?days=365&deployment={deployment}&method=approve_expense&reviewer=reviewer3@bench.example",
        API,
    ),
    ("API: 365 days, unaligned (Wed–Tue)", "manager", "/api/v1/analytics/?since={wednesday}&until={tuesday}", API),
    ("API: 365 days, API key (one deployment)", "key", "/api/v1/analytics/?days=365", API),
    ("page: 30 days", "manager", "/analytics/?days=30", PAGE),
    ("page: 365 days", "manager", "/analytics/?days=365", PAGE),
    ("page: 365 days, one flow", "manager", "/analytics/?days=365&flow=content_approval", PAGE),
    ("page: 365 days, one reviewer", "manager", "/analytics/?days=365&reviewer=reviewer0@bench.example", PAGE),
    ("CSV: reviewers, 365 days", "manager", "/analytics/reviewer.csv?days=365", PAGE),
]


def profile(deployment_pk: int) -> None:
    """Each figure of one year's report, timed on its own (what a slow case spends its time on)."""
    from django.contrib.auth import get_user_model

    from hitl.analytics.figures import DIMENSIONS, Analytics
    from hitl.analytics.filters import AnalyticsFilterForm, resolve_filters

    manager = get_user_model().objects.get(username="bench-manager")
    for params in ({"days": 365}, {"days": 30}, {"days": 365, "flow": "content_approval"}):
        form = AnalyticsFilterForm(params)
        assert form.is_valid()
        analytics = Analytics.of(manager, resolve_filters(form.cleaned_data))
        parts: list[tuple[str, Any]] = [
            ("summary", analytics.summary),
            ("by_period", analytics.by_period),
            ("decisions+channels", lambda a=analytics: (a.decisions(), a.channels())),
            ("by_approver", analytics.by_approver),
            *((f"by_{d}", lambda d=d, a=analytics: a.by_dimension(d)) for d in DIMENSIONS),
        ]
        timings = []
        for name, call in parts:
            started = time.perf_counter()
            call()
            timings.append(f"{name} {(time.perf_counter() - started) * 1000:.0f}")
        print(f"profile {params}: " + ", ".join(timings) + " ms", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from datetime import timedelta

    from django.conf import settings

    # No collectstatic for a benchmark: serve the assets unhashed (what the template costs is unchanged).
    settings.STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Deployment
    from accounts.services import create_api_key
    from hitl.models import HITLRequest, Rollup

    User = get_user_model()
    clients: dict[str, Client] = {"manager": Client()}
    clients["manager"].force_login(User.objects.get(username="bench-manager"))
    deployment = Deployment.objects.filter(organization__name="Bench Org").order_by("pk").first()
    assert deployment is not None, "run `manage.py bench_seed` first"
    _, secret = create_api_key(deployment, name=f"bench-analytics-{int(time.time())}", actor="bench")
    clients["key"] = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    today = timezone.now().date()
    wednesday = today - timedelta(days=364)
    while wednesday.weekday() != 2:
        wednesday -= timedelta(days=1)
    tuesday = wednesday + timedelta(days=364)

    if args.profile:
        profile(deployment.pk)
    total, rollups = HITLRequest.objects.count(), Rollup.objects.count()
    rows: list[dict[str, Any]] = []
    for name, who, url, goal in CASES:
        if args.only and args.only not in name:
            continue
        url = url.format(deployment=deployment.pk, wednesday=wednesday, tuesday=tuesday)
        client = clients[who]
        for _ in range(1):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.content[:500])
        queries: list[str] = []

        def count_query(execute: Any, sql: str, *rest: Any, seen: list[str] = queries) -> Any:
            seen.append(sql)
            return execute(sql, *rest)

        with connection.execute_wrapper(count_query):
            client.get(url)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(url)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        row = {"case": name, "who": who, "url": url, "queries": len(queries), "p50": statistics.median(times)}
        row.update(p95=p95, max=times[-1], goal=goal)
        rows.append(row)
        print(f"{name:48} {row['queries']:3} queries  p50 {row['p50']:8.1f}  p95 {p95:8.1f} ms", file=sys.stderr)
    if args.markdown:
        print(f"Requests in the database: {total:,}; rollup rows: {rollups:,} ({connection.vendor}).\n")
        print("| case | as | queries | p50 (ms) | p95 (ms) | max (ms) | goal (p95) | met |")
        print("|---|---|---:|---:|---:|---:|---|---|")
        for r in rows:
            met = "yes" if r["p95"] < r["goal"] else "**no**"
            print(
                f"| {r['case']} | {r['who']} | {r['queries']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} "
                f"| < {r['goal']:,.0f} ms | {met} |"
            )


if __name__ == "__main__":
    main()
