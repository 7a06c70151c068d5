"""MCP over HTTP: requests per second and latency of `/mcp/` (not collected by pytest).

    .venv/bin/python tests/bench/mcp_transport.py http://127.0.0.1:8220/mcp/ "$KEY" [concurrency] [seconds]

Each worker thread posts stateless JSON-RPC `tools/call list_pending_reviews` (a database read) and
`tools/list` in turn, the way an agent's client does once initialised; the figures compare the WSGI
bridge under gunicorn gthread with the SDK's ASGI app under uvicorn (see RESULTS.md).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

import httpx

HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
CALLS = [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_pending_reviews", "arguments": {}}},
]


def main(url: str, key: str, concurrency: int = 8, seconds: float = 10.0) -> None:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        with httpx.Client(headers={**HEADERS, "Authorization": f"Bearer {key}"}, timeout=30) as http:
            n = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = http.post(url, json=CALLS[n % 2])
                elapsed = time.perf_counter() - started
                n += 1
                with lock:
                    if response.status_code != 200 or "error" in response.json():
                        errors += 1
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(
        f"{len(latencies) / seconds:.0f} req/s, p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms, errors {errors} (concurrency {concurrency})"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]), *(float(a) for a in sys.argv[4:5]))
