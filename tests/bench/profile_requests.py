"""Queries and hot spots of one create / respond / callback, in-process (issue 8).

    DJANGO_SETTINGS_MODULE=tests.bench.settings DATABASE_URL=postgres://… REDIS_URL=redis://… DEBUG=0 SECRET_KEY=… \\
        .venv/bin/python tests/bench/profile_requests.py --key hitl_… [--n 200] [--profile]

Runs against a database `tests/bench/throughput.py` prepared (a deployment, a full API key, a routing rule),
through Django's test client with the production settings (no HTTP server): counts the SQL queries of
one request of each kind (printing them with `-v`) and, with `--profile`, runs `--n` of each under
pyinstrument and prints the call tree.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--json", action="store_true", help="print only the query counts, as one JSON object")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.bench.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from hitl.lib.links import callback_url
    from hitl.models import HITLRequest

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {args.key}")
    anon = Client(HTTP_HOST="127.0.0.1")
    body = json.dumps(
        {"message": "Please review", "emit_options": ["approved", "rejected"], "method_name": "review_content"}
    )

    def create() -> str:
        response = client.post("/api/v1/requests/", body, content_type="application/json")
        assert response.status_code == 201, response.content
        return str(response.json()["id"])

    def respond(pk: str) -> None:
        response = client.post(
            f"/api/v1/requests/{pk}/respond/", '{"outcome": "approved"}', content_type="application/json"
        )
        assert response.status_code == 200, response.content

    def callback(pk: str) -> None:
        url = callback_url(HITLRequest.objects.get(pk=pk))
        path = url.split("://", 1)[1].split("/", 1)[1]
        response = anon.post("/" + path, '{"feedback": "approved", "source": "bench"}', content_type="application/json")
        assert response.status_code == 200, response.content

    for _ in range(3):  # warm-up
        respond(create())
    counts: dict[str, int] = {}
    for name, fn in (("create", create), ("respond", lambda: respond(create())), ("callback", None)):
        pk = create() if name != "create" else ""
        with CaptureQueriesContext(connection) as ctx:
            if name == "create":
                fn()  # type: ignore[misc]
            elif name == "respond":
                respond(pk)
            else:
                callback(pk)
        queries = ctx.captured_queries
        counts[name] = len(queries)
        if args.json:
            continue
        print(f"{name}: {len(queries)} queries, {sum(float(q['time']) for q in queries) * 1000:.1f} ms in SQL")
        if args.verbose:
            for q in queries:
                print(f"   {float(q['time']) * 1000:6.2f} ms  {q['sql'][:220]}")
    if args.json:
        print(json.dumps(counts))
        return
    for name in ("create", "respond", "callback"):
        pks = [create() for _ in range(args.n)] if name != "create" else []
        start = time.perf_counter()
        if name == "create":
            for _ in range(args.n):
                create()
        else:
            for pk in pks:
                (respond if name == "respond" else callback)(pk)
        print(f"{name}: {(time.perf_counter() - start) / args.n * 1000:.1f} ms per request (in-process, serial)")
    if args.profile:
        from pyinstrument import Profiler

        for name in ("create", "respond"):
            pks = [create() for _ in range(args.n)] if name == "respond" else []
            profiler = Profiler(interval=0.0005)
            profiler.start()
            if name == "create":
                for _ in range(args.n):
                    create()
            else:
                for pk in pks:
                    respond(pk)
            profiler.stop()
            print(f"===== {name} x {args.n}")
            print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
