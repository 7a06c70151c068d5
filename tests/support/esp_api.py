"""A stand-in for an ESP's own API on 127.0.0.1, for the ESPs whose inbound webhook only names the
message and Anymail fetches it (Resend, Mailtrap): point ANYMAIL_<ESP>_API_URL at it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeEspApi:
    url: str
    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    posted: list[tuple[str, bytes]] = field(default_factory=list)  # (path, body)

    def json(self, path: str, body: Any) -> None:
        self.routes[path] = ("application/json", json.dumps(body).encode())

    def raw(self, path: str, body: bytes) -> None:
        self.routes[path] = ("message/rfc822", body)

    def xml(self, path: str, body: str) -> None:
        self.routes[path] = ("text/xml", body.encode())


@contextmanager
def fake_esp_api() -> Iterator[FakeEspApi]:
    api: FakeEspApi | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            assert api is not None
            api.seen.append((self.path, self.headers.get("Authorization", "")))
            if self.path not in api.routes:
                self.send_response(404)
                self.end_headers()
                return
            content_type, body = api.routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            assert api is not None
            api.posted.append((self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            self.do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api = FakeEspApi(url=f"http://127.0.0.1:{server.server_address[1]}/")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
