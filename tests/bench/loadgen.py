"""An open-loop load generator: POSTs at a fixed rate, whatever the server's answers take.

    .venv/bin/python tests/bench/loadgen.py --url http://127.0.0.1:8120/api/v1/requests/ --rate 50 --duration 15 \\
        --body '{"message": "Please review"}' --auth 'Bearer hitl_…'

Request i is due at start + i / rate; its latency is measured from that due time, not from when it was
sent, so a server that falls behind shows its queueing in the figures (no coordinated omission). Each
request is one HTTP/1.1 connection (`Connection: close`), as wrk's requests are against gunicorn's sync
workers. Prints one JSON object: achieved rate, p50/p90/p99/max latency in ms, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def post(host: str, port: int, raw: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # to the end: the server closes
        return int(status_line.split()[1])
    finally:
        writer.close()


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = args.body.encode()
    headers = [
        f"POST {url.path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if args.auth:
        headers.append(f"Authorization: {args.auth}")
    raw = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors = 0
    total = int(args.rate * args.duration)
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / args.rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            status = await asyncio.wait_for(post(host, port, raw), timeout=30)
        except (OSError, TimeoutError):
            status = 0
        latencies.append((time.perf_counter() - due) * 1000)
        if not 200 <= status < 300:
            errors += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p * (len(latencies) - 1))))]

    return {
        "sent": total,
        "achieved": total / elapsed,
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
        "max": latencies[-1],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--auth", default="")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
