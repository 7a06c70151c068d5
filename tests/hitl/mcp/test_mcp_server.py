"""`/mcp/` (SPEC §15) through the SDK's own streamable-HTTP client against a live server."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx
import httpx2
import pytest
from django.core import mail
from django.db import connections
from django.test import Client as DjangoClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from hitl.models import HITLRequest, Status
from tests.support import esp_payloads as esp
from tests.support.base import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)

WRITE_TOOLS = {"request_human_review", "cancel_review", "approval_prompt"}
READ_TOOLS = {"get_review_result", "list_pending_reviews"}


def agent(url: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120)
    return Client(streamable_http_client(f"{url}/mcp/", http_client=http))


def run(live_server: Any, key: str, script: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with agent(live_server.url, key) as client:
            return await script(client)

    return anyio.run(main)


def body(result: Any) -> dict[str, Any]:
    return json.loads(result.content[0].text)  # type: ignore[no-any-return]


def in_thread(func: Callable[[], Any]) -> Callable[[], Any]:
    """Django work from a helper thread (a reviewer acting while the agent waits); closes its connection."""

    def wrapped() -> Any:
        try:
            return func()
        finally:
            connections.close_all()

    return wrapped


def wait_for_request(**filters: Any) -> HITLRequest:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = HITLRequest.objects.filter(**filters).first()
        if found is not None and mail.outbox:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no request {filters}")


@pytest.fixture
def world_live(live_server: Any) -> World:
    return build_world()


class TestTools:
    def test_it_lists_every_tool_with_schemas_for_a_full_key(self, live_server: Any, world_live: World) -> None:
        listed = run(live_server, world_live.key, lambda c: c.list_tools())
        tools = {tool.name: tool for tool in listed.tools}
        assert set(tools) == WRITE_TOOLS | READ_TOOLS
        for tool in tools.values():
            assert tool.input_schema["type"] == "object" and tool.output_schema and len(tool.description or "") > 40
        assert tools["request_human_review"].input_schema["required"] == ["message"]
        assert tools["approval_prompt"].input_schema["required"] == ["tool_name", "input"]
        assert tools["get_review_result"].input_schema["properties"]["wait_seconds"]["maximum"] == 50

    def test_a_review_answered_by_email_while_the_agent_polls(self, live_server: Any, world_live: World) -> None:
        async def script(client: Client) -> tuple[Any, Any]:
            first = await client.call_tool(
                "request_human_review",
                {
                    "message": "Publish the launch post?",
                    "content": "# Launch\nWe ship today.",
                    "emit_options": ["approved", "rejected"],
                    "state": {"author": "sam@example.com"},
                    "wait_seconds": 0,
                },
            )
            request_id = body(first)["request_id"]

            def reviewer_replies() -> None:
                wait_for_request(pk=request_id)
                notification = mail.outbox[0]
                esp.reply(
                    DjangoClient(),
                    "postmark",
                    sender="creator@example.com",
                    to=notification.reply_to[0],
                    body="Approved. Great post!",
                )

            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, in_thread(reviewer_replies))
                polled = await client.call_tool("get_review_result", {"request_id": request_id, "wait_seconds": 20})
            return first, polled

        first, polled = run(live_server, world_live.key, script)
        assert body(first)["status"] == "pending" and first.structured_content["status"] == "pending"
        answer = polled.structured_content
        assert (answer["status"], answer["outcome"], answer["source"]) == ("responded", "approved", "email")
        assert answer["feedback"] == "Great post!" and answer["responder"] == "creator@example.com"
        request = HITLRequest.objects.get(pk=answer["request_id"])
        assert request.deployment == world_live.deployment and request.assigned_to_email == "creator@example.com"

    def test_request_human_review_returns_the_answer_when_it_comes_within_the_wait(
        self, live_server: Any, world_live: World
    ) -> None:
        async def script(client: Client) -> Any:
            def answer_soon() -> None:
                request = wait_for_request(message="Go?")
                world_live.client_for("key").post(
                    f"/api/v1/requests/{request.pk}/respond/", {"outcome": "rejected", "feedback": "no"}, format="json"
                )

            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, in_thread(answer_soon))
                return await client.call_tool(
                    "request_human_review", {"message": "Go?", "mode": "approval", "wait_seconds": 20}
                )

        result = run(live_server, world_live.key, script).structured_content
        assert (result["status"], result["outcome"], result["feedback"]) == ("responded", "rejected", "no")

    def test_a_retry_with_the_same_idempotency_key_makes_one_request(self, live_server: Any, world_live: World) -> None:
        args = {"message": "Once?", "wait_seconds": 0, "idempotency_key": "agent-call-1"}

        async def script(client: Client) -> list[Any]:
            return [await client.call_tool("request_human_review", args) for _ in range(3)]

        results = run(live_server, world_live.key, script)
        assert len({r.structured_content["request_id"] for r in results}) == 1
        assert HITLRequest.objects.count() == 1 and len(mail.outbox) == 1
        assert HITLRequest.objects.get().mode == "text"  # neither options nor a mode: free-form feedback
        changed = run(
            live_server, world_live.key, lambda c: c.call_tool("request_human_review", {**args, "message": "Other"})
        )
        assert changed.is_error and body(changed)["code"] == "idempotency_key_reused"

    def test_list_and_cancel(self, live_server: Any, world_live: World) -> None:
        mine = world_live.create(message="Mine")["id"]
        world_live.create(who="other_key", message="Theirs")

        async def script(client: Client) -> tuple[Any, Any, Any, Any]:
            listed = await client.call_tool("list_pending_reviews", {})
            cancelled = await client.call_tool("cancel_review", {"request_id": mine, "reason": "stale"})
            again = await client.call_tool("cancel_review", {"request_id": mine})
            after = await client.call_tool("list_pending_reviews", {})
            return listed, cancelled, again, after

        listed, cancelled, again, after = run(live_server, world_live.key, script)
        reviews = listed.structured_content["reviews"]
        assert [r["request_id"] for r in reviews] == [mine] and reviews[0]["message"] == "Mine"
        assert reviews[0]["assigned_to_email"] == "creator@example.com"
        assert cancelled.structured_content["status"] == "cancelled"
        assert again.is_error and body(again)["code"] == "not_pending"
        assert after.structured_content["reviews"] == []
        assert HITLRequest.objects.get(pk=mine).status == Status.CANCELLED

    def test_another_deployments_request_is_not_found(self, live_server: Any, world_live: World) -> None:
        theirs = world_live.create(who="other_key")["id"]

        async def script(client: Client) -> tuple[Any, Any]:
            got = await client.call_tool("get_review_result", {"request_id": theirs, "wait_seconds": 0})
            cancel = await client.call_tool("cancel_review", {"request_id": theirs})
            return got, cancel

        for result in run(live_server, world_live.key, script):
            assert result.is_error and body(result)["code"] == "not_found"
        assert HITLRequest.objects.get(pk=theirs).status == Status.PENDING


class TestApprovalPrompt:
    ARGS = {"tool_name": "Bash", "input": {"command": "rm -rf build/", "description": "clean"}, "tool_use_id": "t1"}

    def prompt(self, live_server: Any, world: World, reviewer: Callable[[HITLRequest], None]) -> dict[str, Any]:
        async def script(client: Client) -> Any:
            def review() -> None:
                reviewer(wait_for_request(method_name="approval_prompt"))

            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, in_thread(review))
                return await client.call_tool("approval_prompt", self.ARGS)

        result = run(live_server, world.key, script)
        assert not result.is_error
        decision = json.loads(result.content[0].text)
        assert decision == result.structured_content
        return decision  # type: ignore[no-any-return]

    def test_the_reviewer_sees_the_tool_and_its_input_and_allows_it(self, live_server: Any, world_live: World) -> None:
        seen: dict[str, Any] = {}

        def approve(request: HITLRequest) -> None:
            seen.update(message=request.message, content=request.content, state=request.state, mode=request.mode)
            reviewer = DjangoClient()
            reviewer.force_login(world_live.manager)
            seen["page"] = reviewer.get(f"/requests/{request.pk}/").content.decode()
            world_live.client_for("key").post(
                f"/api/v1/requests/{request.pk}/respond/", {"outcome": "approved"}, format="json"
            )

        decision = self.prompt(live_server, world_live, approve)
        assert decision == {"behavior": "allow", "updatedInput": self.ARGS["input"]}
        assert "Bash" in seen["message"] and seen["mode"] == "approval"
        assert json.dumps(self.ARGS["input"], indent=2, sort_keys=True) in seen["content"]
        assert seen["state"]["tool_name"] == "Bash" and seen["state"]["input"] == self.ARGS["input"]
        # The review page shows the tool and its input (the content, and the state in the context panel).
        assert "Allow the agent to run Bash?" in seen["page"] and "rm -rf build/" in seen["page"]

    def test_an_edited_input_comes_back_as_updated_input(self, live_server: Any, world_live: World) -> None:
        def approve_edited(request: HITLRequest) -> None:
            assert request.editable
            edited = '```json\n{"command": "rm -rf build/cache", "description": "clean"}\n```'
            world_live.client_for("key").post(
                f"/api/v1/requests/{request.pk}/respond/",
                {"outcome": "approved", "edited_output": edited},
                format="json",
            )

        decision = self.prompt(live_server, world_live, approve_edited)
        assert decision == {
            "behavior": "allow",
            "updatedInput": {"command": "rm -rf build/cache", "description": "clean"},
        }

    def test_a_rejection_by_email_denies_with_its_comment_as_the_message(
        self, live_server: Any, world_live: World
    ) -> None:
        def reject_by_email(request: HITLRequest) -> None:
            esp.reply(
                DjangoClient(),
                "postmark",
                sender="creator@example.com",
                to=mail.outbox[0].reply_to[0],
                body="Rejected: never delete the build folder",
            )

        decision = self.prompt(live_server, world_live, reject_by_email)
        assert decision == {"behavior": "deny", "message": "never delete the build folder"}

    def test_a_timeout_denies_and_withdraws_the_request(
        self, live_server: Any, world_live: World, settings: Any
    ) -> None:
        settings.HITL_MCP_PROMPT_WAIT = 1
        result = run(live_server, world_live.key, lambda c: c.call_tool("approval_prompt", self.ARGS))
        decision = json.loads(result.content[0].text)
        assert decision["behavior"] == "deny" and "1 seconds" in decision["message"]
        assert HITLRequest.objects.get().status == Status.CANCELLED


class TestRefusals:
    def test_a_read_only_key_gets_only_the_read_tools(self, live_server: Any, world_live: World) -> None:
        async def script(client: Client) -> tuple[Any, list[Any]]:
            listed = await client.list_tools()
            calls = [
                await client.call_tool("request_human_review", {"message": "Sneak?"}),
                await client.call_tool("approval_prompt", {"tool_name": "Bash", "input": {}}),
                await client.call_tool("cancel_review", {"request_id": "00000000-0000-0000-0000-000000000000"}),
            ]
            return listed, calls

        listed, calls = run(live_server, world_live.read_key, script)
        assert {tool.name for tool in listed.tools} == READ_TOOLS
        for result in calls:
            assert result.is_error and body(result)["code"] == "permission_denied"
        assert HITLRequest.objects.count() == 0

    def test_a_bad_argument_is_a_tool_error_naming_it(self, live_server: Any, world_live: World) -> None:
        async def script(client: Client) -> list[Any]:
            return [
                await client.call_tool("request_human_review", {"message": "Hi", "wait_seconds": 99}),
                await client.call_tool("request_human_review", {"emit_options": ["a"]}),
                await client.call_tool("request_human_review", {"message": "Hi", "colour": "red"}),
                await client.call_tool("request_human_review", {"message": "Hi", "mode": "emit", "emit_options": []}),
                await client.call_tool("get_review_result", {"request_id": "not-a-uuid"}),
                await client.call_tool("no_such_tool", {}),
            ]

        wait, missing, unknown, empty, bad_id, no_tool = run(live_server, world_live.key, script)
        assert body(wait)["code"] == "invalid" and "wait_seconds" in body(wait)["detail"]
        assert body(missing)["code"] == "invalid" and "message" in body(missing)["detail"]
        assert body(unknown)["code"] == "invalid" and "colour" in body(unknown)["detail"]
        assert body(empty)["code"] == "invalid" and "emit_options" in body(empty)["detail"]
        assert body(bad_id)["code"] == "not_found"
        assert body(no_tool)["code"] == "not_found"
        assert all(r.is_error for r in (wait, missing, unknown, empty, bad_id, no_tool))
        assert HITLRequest.objects.count() == 0

    def test_without_a_valid_key_it_is_401(self, live_server: Any, world_live: World) -> None:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        anonymous = httpx.post(f"{live_server.url}/mcp/", json=ping)
        wrong = httpx.post(f"{live_server.url}/mcp/", json=ping, headers={"Authorization": "Bearer hitl_nope_nope"})
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_authenticated")
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_api_key")

    def test_get_and_delete_are_refused_quickly_by_a_stateless_server(
        self, live_server: Any, world_live: World
    ) -> None:
        auth = {"Authorization": f"Bearer {world_live.key}", "Accept": "text/event-stream"}
        get = httpx.get(f"{live_server.url}/mcp/", headers=auth, timeout=10)
        delete = httpx.delete(f"{live_server.url}/mcp/", headers=auth, timeout=10)
        assert (get.status_code, get.headers["Allow"], get.json()["code"]) == (405, "POST", "method_not_allowed")
        assert delete.status_code == 405
