"""`/mcp/`: the Model Context Protocol server (SPEC §15), inside the Django project.

The official SDK's low-level `Server` and its `StreamableHTTPSessionManager` in *stateless, JSON
response* mode: every POST is one JSON-RPC exchange answered with one JSON body, no session to keep and
no SSE stream to hold open, so any process and any thread can answer any request. That is what lets it
live behind the same WSGI server as everything else (`hitl serve`, gunicorn gthread): the Django view
below hands the request to the SDK's ASGI app running on one event loop per process (a daemon thread)
and waits for the answer. It passes through Django's middleware, URLconf, ALLOWED_HOSTS and settings,
and authenticates with the deployment's API key exactly as the REST API does.

Tool calls run their Django code in a worker thread (`_db`) that closes its database connection when it
is done: a review that waits 50 s sleeps on the event loop, holding no connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
import jsonschema
import mcp_types as types
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from rest_framework import exceptions

from accounts.api.authentication import ApiKeyAuthentication
from accounts.lib.access import ApiKeyPrincipal
from hitl.mcp import tools
from hitl.models import Status

logger = logging.getLogger(__name__)

PRINCIPAL = "hitl.principal"  # the ASGI scope key carrying the authenticated key to the tool handlers
POLL = 0.5  # seconds between looks at a pending request while a tool waits
T = TypeVar("T")


# --- the tools, on the event loop ------------------------------------------------------------------------


def _run_closing(func: Callable[..., T], *args: Any) -> T:
    try:
        return func(*args)
    finally:
        connections.close_all()  # this worker thread's connections only: nothing held between calls


async def _db(func: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(_run_closing, func, *args)


async def _wait(request_id: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await _db(tools.status_of, request_id) == Status.PENDING:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await anyio.sleep(min(POLL, remaining))


def _principal(ctx: ServerRequestContext[Any, Any]) -> ApiKeyPrincipal:
    request = ctx.request
    principal = getattr(request, "scope", {}).get(PRINCIPAL) if request is not None else None
    if not isinstance(principal, ApiKeyPrincipal):
        raise RuntimeError("MCP request without an authenticated principal")  # the view always sets it
    return principal


def _wait_seconds(arguments: dict[str, Any]) -> int:
    return int(arguments.get("wait_seconds", 30))


async def _call(name: str, principal: ApiKeyPrincipal, arguments: dict[str, Any]) -> dict[str, Any]:
    if name == "request_human_review":
        request_id = await _db(tools.create_review, principal, arguments)
        await _wait(request_id, _wait_seconds(arguments))
        return await _db(lambda: tools.outcome(tools.visible(principal, request_id)))
    if name == "get_review_result":
        found = await _db(lambda: tools.outcome(tools.visible(principal, arguments["request_id"])))
        await _wait(found["request_id"], _wait_seconds(arguments))
        return await _db(lambda: tools.outcome(tools.visible(principal, found["request_id"])))
    if name == "list_pending_reviews":
        return await _db(tools.list_pending, principal, arguments)
    if name == "cancel_review":
        return await _db(tools.cancel_review, principal, arguments)
    if name == "approval_prompt":
        request_id = await _db(tools.create_prompt, principal, arguments)
        await _wait(request_id, tools.prompt_wait())
        return await _db(tools.prompt_decision, principal, request_id, arguments["input"])
    raise tools.ToolError("not_found", f"No tool {name}.")


def _error(code: str, detail: str) -> types.CallToolResult:
    body = json.dumps({"code": code, "detail": detail})
    return types.CallToolResult(content=[types.TextContent(text=body)], is_error=True)


def _validation_message(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    principal = _principal(ctx)
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name=tool.name,
                title=tool.title,
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
                annotations=types.ToolAnnotations(read_only_hint=not tool.writes, open_world_hint=False),
            )
            for tool in tools.tools_for(principal)
        ]
    )


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    principal = _principal(ctx)
    tool = tools.BY_NAME.get(params.name)
    if tool is None:
        return _error("not_found", f"No tool {params.name!r}; list_tools names them.")
    if tool.writes and not tools.can_write(principal):
        return _error("permission_denied", f"{tool.name} needs a full-access API key; this key is read-only.")
    arguments = dict(params.arguments or {})
    problems = sorted(jsonschema.Draft202012Validator(tool.input_schema).iter_errors(arguments), key=str)
    if problems:
        return _error("invalid", "; ".join(_validation_message(p) for p in problems))
    try:
        data = await _call(tool.name, principal, arguments)
    except tools.ToolError as exc:
        return _error(exc.code, exc.detail)
    except (OperationalError, InterfaceError):
        logger.warning("mcp: %s: database unavailable", tool.name, exc_info=True)
        return _error("database_unavailable", "The database is unavailable; retry in a few seconds.")
    except Exception:
        logger.exception("mcp: %s failed", tool.name)
        return _error("server_error", "The server failed to run this tool; it was logged.")
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(data))], structured_content=data)


def build_server() -> Server[Any]:
    return Server(
        "hitl",
        version="1",
        instructions=(
            "Ask a human: request_human_review (then get_review_result until it is not pending), "
            "approval_prompt for Claude Code's --permission-prompt-tool."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


# --- one event loop per process, serving the SDK's ASGI app ---------------------------------------------


class Runtime:
    """The SDK's session manager running on an event loop in a daemon thread of this process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        # Host and Origin are checked by Django (ALLOWED_HOSTS) before a request gets here.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.manager = StreamableHTTPSessionManager(
            app=build_server(), json_response=True, stateless=True, security_settings=security
        )
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="hitl-mcp", daemon=True).start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the MCP event loop did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await anyio.sleep_forever()

    def serve(self, scope: dict[str, Any], body: bytes, timeout: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        future = asyncio.run_coroutine_threadsafe(self._serve(scope, body), self.loop)
        return future.result(timeout=timeout)

    async def _serve(self, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        done = anyio.Event()
        status, headers, chunks = 500, [], []

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    done.set()

        await self.manager.handle_request(cast(Any, scope), cast(Any, receive), cast(Any, send))
        done.set()
        return status, headers, b"".join(chunks)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime, started on first use (and again in a child after a fork)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = Runtime()
        return _runtime


# --- the Django view ---------------------------------------------------------------------------------------


def _scope(request: HttpRequest, principal: ApiKeyPrincipal) -> dict[str, Any]:
    headers = [
        (name[5:].replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in request.META.items()
        if name.startswith("HTTP_")
    ]
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if request.META.get(name):
            headers.append((name.replace("_", "-").lower().encode(), str(request.META[name]).encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method or "POST",
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": (request.get_host(), int(request.get_port() or 0)),
        "state": {},
        PRINCIPAL: principal,
    }


def _unauthorized(detail: str, code: str) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="hitl"'
    return response


@csrf_exempt
def endpoint(request: HttpRequest) -> HttpResponse:
    """POST /mcp/ (JSON-RPC over streamable HTTP); GET and DELETE answer 405 as a stateless server does."""
    if request.method != "POST":
        # No session to delete and no server-initiated stream to offer (the transport spec allows 405);
        # the SDK would hold a GET open as an SSE stream, and with it one of our threads.
        refusal = JsonResponse(
            {"detail": "Only POST: this MCP server is stateless.", "code": "method_not_allowed"}, status=405
        )
        refusal["Allow"] = "POST"
        return refusal
    try:
        found = ApiKeyAuthentication().authenticate(cast(Any, request))
    except exceptions.AuthenticationFailed as exc:
        return _unauthorized(str(exc.detail), str(exc.get_codes()))
    if found is None:
        return _unauthorized("An API key is required: Authorization: Bearer hitl_…", "not_authenticated")
    if b"\x00" in request.body or b"\\u0000" in request.body.lower():
        return JsonResponse(
            {"detail": "Input must not contain NUL characters (\\u0000).", "code": "invalid"}, status=400
        )
    # A prompt may wait HITL_MCP_PROMPT_WAIT seconds; anything else at most 50 s.
    timeout = max(tools.MAX_WAIT, tools.prompt_wait()) + 30
    status, headers, body = runtime().serve(_scope(request, found[0]), request.body, timeout)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        if name.lower() not in (b"content-length", b"connection", b"transfer-encoding"):
            response[name.decode("latin-1")] = value.decode("latin-1")
    return response
