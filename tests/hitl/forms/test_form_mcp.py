"""MCP (SPEC §15) with typed forms (SPEC §14): an agent passes its elicitation-style schema through
`request_human_review` and gets the typed answers back; a bad schema is a tool error naming it."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import pytest

from hitl import services
from hitl.models import HITLRequest
from tests.hitl.forms.support import SCHEMA
from tests.hitl.mcp.test_mcp_server import body, in_thread, run, wait_for_request
from tests.support.base import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world_live(live_server: Any) -> World:
    return build_world()


class TestFormOverMcp:
    def test_a_form_is_asked_and_answered_with_typed_values(self, live_server: Any, world_live: World) -> None:
        values = {"vendor": "Globex", "risk": "high", "amount": 12, "approved": True, "regions": ["eu"]}

        def answer() -> None:
            request = wait_for_request(mode="form")
            services.respond_to_request(request.pk, services.Answer(form=values), responder="r@x.example", source="api")

        async def script(client: Any) -> Any:
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, in_thread(answer))
                return await client.call_tool(
                    "request_human_review",
                    {
                        "message": "Check the vendor",
                        "schema": SCHEMA,
                        "initial": {"vendor": "Acme"},
                        "wait_seconds": 20,
                    },
                )

        result = run(live_server, world_live.key, script).structured_content
        assert result["status"] == "responded" and result["response_type"] == "form"
        assert result["form"] == values and result["edited_fields"] == [
            "vendor",
            "risk",
            "amount",
            "approved",
            "regions",
        ]
        assert HITLRequest.objects.get().form_schema == SCHEMA

    def test_a_bad_schema_is_a_tool_error(self, live_server: Any, world_live: World) -> None:
        bad = {"type": "object", "properties": {"x": {"type": "string", "pattern": "(a+)+$", "maxLength": 9}}}
        result = run(
            live_server, world_live.key, lambda c: c.call_tool("request_human_review", {"message": "x", "schema": bad})
        )
        assert result.is_error and body(result)["code"] == "invalid_schema"
        assert "pattern" in body(result)["detail"]
        assert not HITLRequest.objects.exists()
