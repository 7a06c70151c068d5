"""`/mcp/` behind the production server: gunicorn with gthread workers on WSGI (SPEC §11, §15)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from django.db import connection

from hitl.models import HITLRequest
from tests.hitl.mcp.test_mcp_server import agent
from tests.support.base import build_world
from tests.support.qcluster import BASE_DIR, QCluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="another process must see the test database")
@pytest.mark.django_db(transaction=True)
class TestBehindGunicorn:
    def test_an_agent_asks_and_polls_across_two_gthread_workers(self, tmp_path: Path) -> None:
        pytest.importorskip("gunicorn")  # the production server (`hitl serve`); in the bench extra until then
        world = build_world()
        port = free_port()
        # Plain HTTP on 127.0.0.1: no TLS proxy in front, so no redirect to https (HITL_BASE_URL is https).
        env = {**QCluster(tmp_path / "unused.log").env(), "ALLOWED_HOSTS": "127.0.0.1", "HITL_SSL_REDIRECT": "0"}
        command = [sys.executable, "-m", "gunicorn", "hitl.wsgi", "-k", "gthread", "-w", "2", "--threads", "4"]
        log = (tmp_path / "gunicorn.log").open("wb")
        server = subprocess.Popen([*command, "-b", f"127.0.0.1:{port}"], cwd=BASE_DIR, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/mcp/", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None, (
                        tmp_path / "gunicorn.log"
                    ).read_text()
                    time.sleep(0.3)

            async def script() -> list[Any]:
                results = []
                async with agent(url, world.key) as client:
                    asked = await client.call_tool(
                        "request_human_review", {"message": "Deploy?", "mode": "approval", "wait_seconds": 0}
                    )
                    request_id = asked.structured_content["request_id"]
                    results.append(asked)
                    await anyio.to_thread.run_sync(
                        lambda: httpx.post(
                            f"{url}/api/v1/requests/{request_id}/respond/",
                            json={"outcome": "approved", "feedback": "ship"},
                            headers={"Authorization": f"Bearer {world.key}"},
                        ).raise_for_status()
                    )
                    # Several polls: whichever worker (and thread) answers, the same result.
                    for _ in range(4):
                        results.append(
                            await client.call_tool("get_review_result", {"request_id": request_id, "wait_seconds": 5})
                        )
                return results

            asked, *polls = anyio.run(script)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        assert asked.structured_content["status"] == "pending"
        for poll in polls:
            assert (poll.structured_content["status"], poll.structured_content["feedback"]) == ("responded", "ship")
        assert HITLRequest.objects.get().deployment == world.deployment
