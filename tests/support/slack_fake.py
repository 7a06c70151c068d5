"""A fake Slack Web API on 127.0.0.1 that records every call and answers like the real one, plus the
signed interactivity posts Slack sends to our endpoint (button presses, modal submissions)."""

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
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.test import Client

TEAM = "T0HITL0001"


@dataclass
class Call:
    token: str
    method: str
    payload: dict[str, Any]


@dataclass
class FakeSlack:
    """`users` maps Slack user ids to their profile email (None: no email visible); `fail` makes every
    call answer (HTTP status, Slack error), like a revoked token's `invalid_auth`."""

    calls: list[Call] = field(default_factory=list)
    users: dict[str, str | None] = field(default_factory=dict)
    unconfirmed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    bots: set[str] = field(default_factory=set)
    fail: tuple[int, str] | None = None
    slow_users_info: float = 0.0  # seconds users.info takes (outside the lock)
    port: int = 0
    next_ts: int = 1_700_000_000
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        method = parts.path.rsplit("/", 1)[-1]
        payload: dict[str, Any] = dict(parse_qsl(parts.query))
        if "json" in (headers.get("Content-Type") or ""):
            payload.update(json.loads(body or b"{}"))
        elif body:
            payload.update(parse_qsl(body.decode()))
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if method == "users.info" and self.slow_users_info:
            time.sleep(self.slow_users_info)
        with self._lock:
            self.calls.append(Call(token, method, payload))
            if self.fail:
                return self.fail[0], {"ok": False, "error": self.fail[1]}
            return 200, self._answer(method, payload)

    def _answer(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            self.next_ts += 1
            return {"ok": True, "channel": payload.get("channel"), "ts": f"{self.next_ts}.000100", "message": {}}
        if method == "chat.update":
            return {"ok": True, "channel": payload.get("channel"), "ts": payload.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{self.next_ts}.000200"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0HITL0001"}}
        if method == "auth.test":
            return {"ok": True, "team": "Acme", "team_id": TEAM, "user": "hitl-bot", "bot_id": "B0HITL0001"}
        if method == "users.info":
            user_id = str(payload.get("user", ""))
            if user_id not in self.users:
                return {"ok": False, "error": "user_not_found"}
            email = self.users[user_id]
            profile = {"real_name": user_id, **({"email": email} if email else {})}
            return {
                "ok": True,
                "user": {
                    "id": user_id,
                    "team_id": TEAM,
                    "deleted": user_id in self.deleted,
                    "is_bot": user_id in self.bots,
                    "is_email_confirmed": user_id not in self.unconfirmed,
                    "profile": profile,
                },
            }
        return {"ok": False, "error": "unknown_method"}


@contextmanager
def running(fake: FakeSlack) -> Iterator[FakeSlack]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = fake.handle(self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST  # noqa: N815

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


# --- what Slack posts to us ------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def post_interaction(
    deployment_id: int,
    payload: dict[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    body: str | None = None,
) -> Any:
    """POST a payload the way Slack does: form-encoded `payload=<json>`, signed with the app's secret."""
    body = body if body is not None else urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return Client().post(
        f"/slack/{deployment_id}/interactions/",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=stamp,
        HTTP_X_SLACK_SIGNATURE=signature if signature is not None else sign(secret, stamp, body),
    )


def block_actions(user: str, channel: str, action_id: str, value: str, *, trigger_id: str = "T-1") -> dict[str, Any]:
    """A `block_actions` payload: `user` pressed the button (`action_id`, `value`) in `channel`."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0HITL0001",
        "trigger_id": trigger_id,
        "channel": {"id": channel, "name": "reviews"},
        "container": {"type": "message", "channel_id": channel, "message_ts": "1700000001.000100"},
        "message": {"type": "message", "ts": "1700000001.000100", "text": "…"},
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "hitl_actions_0",
                "value": value,
                "action_ts": "1700000002.000300",
            }
        ],
    }


def view_submission(user: str, view: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A `view_submission` payload for the modal `view` we opened, with the inputs' `values` as
    {block_id: {"value": <element state>}}."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0HITL0001",
        "trigger_id": "T-2",
        "view": {
            **view,
            "id": "V0HITL0001",
            "team_id": TEAM,
            "state": {"values": values},
        },
    }


def buttons_of(call: Call) -> dict[str, dict[str, Any]]:
    """The buttons of a posted message, by their text."""
    blocks = call.payload["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return {
        element["text"]["text"]: element
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }
