"""A webhook receiver on 127.0.0.1 that checks every delivery the way our customers will: with the seed's
snippet and with the `standardwebhooks` library, from the one secret string we showed them."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks import WebhookVerificationError


def seed_verify(signing_secret: str, timestamp: str, payload: str, signature: str) -> bool:
    """The seed's verification snippet, verbatim but for the function around it."""
    expected = hmac.new(signing_secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def standard_verify(secret: str, body: str, headers: dict[str, str]) -> bool:
    try:
        StandardWebhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    seed_ok: bool
    standard_ok: bool
    answered: int
    received_at: float = field(default_factory=time.monotonic)  # for the gaps between retries

    @property
    def payload(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    """`statuses` are answered in order (then 200); `hold` makes request number N (1-based) wait until
    `release` is set; `redirect_to` answers every request with a 302 there."""

    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    hold: int | None = None
    redirect_to: str | None = None
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hitl"

    def verify(self, headers: dict[str, str], body: str) -> tuple[bool, bool]:
        if not self.secret:
            return False, False
        signature = headers.get("x-signature", "").removeprefix("sha256=")
        seed_ok = seed_verify(self.secret, headers.get("x-timestamp", ""), body, signature)
        return seed_ok, standard_verify(self.secret, body, headers)

    def handle(self, method: str, path: str, headers: dict[str, str], body: str) -> tuple[int, dict[str, str]]:
        with self._lock:
            number = len(self.received) + 1
            if self.redirect_to:
                status, extra = 302, {"Location": self.redirect_to}
            else:
                status = self.statuses[number - 1] if number <= len(self.statuses) else 200
                extra = {}
            seed_ok, standard_ok = self.verify(headers, body)
            self.received.append(Received(method, path, headers, body, seed_ok, standard_ok, status))
        self.arrived.set()
        if self.hold == number:
            self.release.wait(timeout=30)
        return status, extra

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        import time

        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"expected {count} deliveries, got {len(self.received)}"
        return self.received


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra = receiver.handle(self.command, self.path, headers, body)
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                reply = f"answered {status}".encode()
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                pass  # the sender is gone (a killed worker)

        do_POST = _serve
        do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
