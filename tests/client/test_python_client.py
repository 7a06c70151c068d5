"""The Python client (the hitl-client distribution, `hitl_client`) against a live server (real HTTP on
127.0.0.1). tests/production/ installs it alone in a virtualenv and drives an installed server."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from hitl_client import HitlApiError, HitlClient, HitlTimeout, verify_signature
from tests.support.base import build_world

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
CLIENT_ROOT = ROOT / "hitl" / "client"


def python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter with the checkout's client on the path (as if installed)."""
    env = {"PYTHONPATH": f"{CLIENT_ROOT}:{ROOT}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)


class TestClient:
    def test_create_wait_answer_and_errors(self, live_server) -> None:
        world = build_world()
        with HitlClient(live_server.url, world.key) as client:
            created = client.create_request("Ship it?", emit_options=["approved", "rejected"], content="# v2")
            assert created["status"] == "pending"
            with pytest.raises(HitlTimeout):
                client.wait_for_result(created["id"], timeout=1)

            def answer_soon() -> None:
                time.sleep(0.5)
                HitlClient(live_server.url, world.key).respond(created["id"], outcome="approved", feedback="go")

            thread = threading.Thread(target=answer_soon)
            thread.start()
            result = client.wait_for_result(created["id"], timeout=20, poll=10)
            thread.join()
            assert (result["status"], result["outcome"], result["feedback"]) == ("responded", "approved", "go")
            with pytest.raises(HitlApiError) as conflict:
                client.respond(created["id"], outcome="rejected")
            assert (conflict.value.status, conflict.value.code) == (409, "not_pending")
            with pytest.raises(HitlApiError) as invalid:
                client.create_request("", emit_options=[])
            assert invalid.value.code == "invalid" and "emit_options" in invalid.value.body["errors"]

    def test_it_imports_without_django(self) -> None:
        for module in ("hitl_client", "hitl.client"):
            out = python(f"import sys; import {module}; assert 'django' not in sys.modules; print('ok')")
            assert out.stdout.strip() == "ok", out.stderr


class LosesTheFirstAnswer(httpx.HTTPTransport):
    """The server gets every call, but the first answer is lost on the way back (a timeout after the
    work was done), as a proxy or a flaky network does; the second try gets a 503 from "the proxy"."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        if len(self.keys) == 2:
            return httpx.Response(503, json={"detail": "busy", "code": "unavailable"})
        response = super().handle_request(request)
        if len(self.keys) == 1:
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


class TestRetries:
    def test_a_retried_create_sends_one_key_and_makes_one_request(self, live_server) -> None:
        from hitl.models import HITLRequest

        world = build_world()
        transport = LosesTheFirstAnswer()
        with HitlClient(live_server.url, world.key, transport=transport, backoff=0.01) as client:
            created = client.create_request("Ship it?", emit_options=["approved", "rejected"])
        assert len(transport.keys) == 3 and len(set(transport.keys)) == 1 and transport.keys[0]
        assert HITLRequest.objects.count() == 1
        assert str(HITLRequest.objects.get().pk) == created["id"]

    def test_each_create_gets_a_fresh_key(self, live_server) -> None:
        from hitl.models import HITLRequest

        world = build_world()
        with HitlClient(live_server.url, world.key) as client:
            client.create_request("One?", mode="text")
            client.create_request("One?", mode="text")
            client.create_request("Mine", mode="text", idempotency_key="caller-chosen")
            client.create_request("Mine", mode="text", idempotency_key="caller-chosen")
        assert HITLRequest.objects.count() == 3


class TestVerifySignature:
    def test_it_accepts_our_signature_and_refuses_changes(self) -> None:
        body, timestamp = '{"event":"new_request"}', str(int(time.time()))
        digest = hmac.new(b"s3cret", f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
        headers = {"X-Signature": f"sha256={digest}", "X-Timestamp": timestamp}
        assert verify_signature("s3cret", body, headers)
        assert not verify_signature("s3cret", body + " ", headers)
        assert not verify_signature("other", body, headers)
        old = str(int(time.time()) - 3600)
        stale = hmac.new(b"s3cret", f"{old}.{body}".encode(), hashlib.sha256).hexdigest()
        assert not verify_signature("s3cret", body, {"X-Signature": f"sha256={stale}", "X-Timestamp": old})


class TestMatchingAgreesWithTheServer:
    """The client's copy of emit matching (it may import nothing from the server) reads answers as the
    server's `hitl.lib.answers` does."""

    OPTIONS = ["approved", "rejected", "needs_revision", "approved_with_changes"]

    @pytest.mark.parametrize(
        "text",
        [
            "Approved!",
            "approved. Great article!",
            "needs_revision: tighten the intro",
            "Needs revision - tighten the intro",
            "approved with changes, fix typo",
            "**Rejected**\n\nnot on brand",
            "I am not sure",
            "",
            "  \n approved\nsecond line",
            "approvedly",
        ],
    )
    def test_it_splits_like_the_server(self, text: str) -> None:
        from hitl.lib.answers import split_leading_option as server_split
        from hitl_client.matching import split_leading_option as client_split

        server = server_split(text, self.OPTIONS)
        assert client_split(text, self.OPTIONS) == (server.outcome, server.feedback)

    def test_the_client_imports_nothing_from_the_server(self) -> None:
        code = (
            "import sys, hitl_client, hitl_client.crewai, hitl_client.matching; "
            "ours = ('django', 'accounts', 'audit', 'flows', 'hitl'); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ours);"
            "print(bad); sys.exit(1 if bad else 0)"
        )
        done = python(code)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_the_alias_works_without_the_installed_client(self) -> None:
        """Where only the server is installed, `hitl.client` is the copy shipped inside it."""
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
        code = (
            "import hitl.client, hitl.client.crewai, hitl.client.matching, sys; "
            "assert 'hitl_client' not in sys.modules; print(hitl.client.HitlClient.__module__)"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
        assert done.stdout.strip() == "hitl.client.hitl_client", done.stderr
