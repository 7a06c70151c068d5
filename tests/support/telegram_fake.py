"""A fake Telegram Bot API on 127.0.0.1: records every call and answers like the real one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    token: str
    method: str
    payload: dict[str, Any]


@dataclass
class FakeTelegram:
    """`fail` makes every call answer (status, description), like a revoked token's 401."""

    calls: list[Call] = field(default_factory=list)
    fail: tuple[int, str] | None = None
    port: int = 0
    next_message_id: int = 100
    usernames: dict[str, int] = field(default_factory=dict)  # @channelname → its numeric chat id
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        # /bot<token>/<method>
        _, bot, method = path.split("/", 2)
        with self._lock:
            self.calls.append(Call(bot.removeprefix("bot"), method, json.loads(body or b"{}")))
            if self.fail:
                return self.fail[0], {"ok": False, "error_code": self.fail[0], "description": self.fail[1]}
            if method == "sendMessage":
                self.next_message_id += 1
                chat = self.calls[-1].payload.get("chat_id")
                # As Telegram: a chat addressed by @username comes back with its numeric id.
                if isinstance(chat, str) and chat.startswith("@"):
                    shown: dict[str, Any] = {"id": self.usernames.get(chat[1:].lower(), -1000000000001)}
                    shown["username"] = chat[1:]
                else:
                    shown = {"id": chat}
                return 200, {"ok": True, "result": {"message_id": self.next_message_id, "chat": shown}}
            return 200, {"ok": True, "result": True}


@contextmanager
def running(fake: FakeTelegram) -> Iterator[FakeTelegram]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = fake.handle(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
