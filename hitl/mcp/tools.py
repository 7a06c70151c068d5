"""The MCP tools (SPEC §15): their schemas, and what each does, in plain synchronous Django.

The server (`hitl.mcp.server`) calls these from a worker thread and closes the thread's database
connection after each call, so a long wait sleeps on the event loop, never on a connection. Every write
goes through `hitl.services`, as the REST API's does: same routing, notifications, audit and webhooks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response

from accounts.lib.access import Action, ApiKeyPrincipal, principal_label
from accounts.models import ApiKey
from hitl import idempotency, services
from hitl.api.serializers import result_of
from hitl.lib.errors import HitlError
from hitl.models import HITLRequest, Mode, Source, Status

MAX_WAIT = 50  # seconds a review tool may hold its HTTP request (SPEC §15)


class ToolError(Exception):
    """A refusal the agent can act on: the §7 `code` and a `detail` sentence."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    writes: bool


STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
JSON_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
REQUEST_ID = {"type": "string", "format": "uuid", "description": "The review request's id (request_id)."}
WAIT = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_WAIT,
    "default": 30,
    "description": f"Seconds to wait for the human's answer before returning pending (0–{MAX_WAIT}).",
}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "status pending: nobody has answered yet (call get_review_result again). Otherwise the "
    "SPEC §2 result: outcome (the option chosen, null for free text), feedback, text, choice(s), responder, "
    "source, responded_at, edited_output.",
    "properties": {
        "status": {"enum": list(Status.values)},
        "request_id": STRING,
        "outcome": NULLABLE_STRING,
        "feedback": NULLABLE_STRING,
        "text": NULLABLE_STRING,
        "responder": NULLABLE_STRING,
        "source": NULLABLE_STRING,
        "responded_at": NULLABLE_STRING,
        "edited_output": NULLABLE_STRING,
        "form": {"type": ["object", "null"], "description": "form mode: the typed answers (SPEC §14)."},
        "edited_fields": {"type": "array", "items": STRING},
        "content_sha256": NULLABLE_STRING,
    },
    "required": ["status", "request_id"],
    "additionalProperties": True,
}

CREATE_FIELDS: dict[str, Any] = {
    "message": {"type": "string", "minLength": 1, "description": "The question the reviewer sees (a line or two)."},
    "content": {"type": "string", "description": "What to review, in Markdown (rendered safely on the page)."},
    "mode": {
        "enum": [m.value for m in Mode],
        "description": "emit (pick one of emit_options), approval (approve/reject), choices (pick from "
        "options), text (free-form answer), form (typed fields of schema). Default: emit with emit_options, "
        "choices with options, form with schema, else text.",
    },
    "schema": {
        **JSON_OBJECT,
        "description": "form mode: a JSON Schema object whose properties are strings (enum, format, "
        "minLength/maxLength, pattern), numbers/integers (minimum/maximum), booleans and arrays of enum "
        "strings (the MCP elicitation subset, SPEC §14). The result's form holds the typed answers.",
    },
    "initial": {**JSON_OBJECT, "description": "form mode: values that pre-fill the form."},
    "emit_options": {
        "type": "array",
        "items": STRING,
        "description": 'Outcomes shown as buttons, e.g. ["approved", "rejected"].',
    },
    "options": {"type": "array", "items": JSON_OBJECT, "description": "choices mode: the items to pick from."},
    "label_path": {"type": "string", "description": "choices mode: dotted path to each option's label."},
    "value_path": STRING,
    "description_path": STRING,
    "multiple": {"type": "boolean", "description": "choices mode: allow more than one."},
    "state": {**JSON_OBJECT, "description": "Context shown in the reviewer's context panel; routing rules read it."},
    "metadata": {**JSON_OBJECT, "description": "Passed through to the result and webhooks."},
    "assign_to": {"type": "string", "format": "email", "description": "Ask this person (overrides routing)."},
    "channel": {"enum": ["email", "telegram"]},
    "timeout": {"type": "integer", "minimum": 1, "description": "Seconds until the default outcome (or timeout)."},
    "default_outcome": {"type": "string", "description": "Answer given automatically when the timeout passes."},
    "on_timeout": {"enum": ["default", "fail", "continue"]},
    "link_ttl": {"type": "integer", "minimum": 60, "description": "Lifetime of the reviewer's magic link (s)."},
    "editable": {"type": "boolean", "description": "The reviewer may edit content; the edit is edited_output."},
    "flow_id": {"type": "string", "description": "Your id of the run that asks."},
    "flow_name": STRING,
    "method_name": {"type": "string", "description": "The step that asks (routing rules match on it)."},
}

TOOLS = [
    Tool(
        name="request_human_review",
        title="Ask a human to review",
        description=(
            "Ask a person to review something and answer. The deployment's routing picks the reviewer, who is "
            "notified (email by default) and answers by reply, on the review page or in chat. Waits up to "
            f"wait_seconds (at most {MAX_WAIT}) for the answer: returns the result (status responded, "
            "auto_responded, timed_out or cancelled, with outcome and feedback), or {status: pending, request_id} "
            "— then call get_review_result with that request_id until it is not pending. Pass an "
            "idempotency_key to make a retry of this call safe (the same key returns the same request)."
        ),
        input_schema={
            "type": "object",
            "properties": {
                **CREATE_FIELDS,
                "wait_seconds": WAIT,
                "idempotency_key": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": idempotency.MAX_LENGTH,
                    "description": "Any unique string; a retry with the same key makes no second request.",
                },
            },
            "required": ["message"],
            "additionalProperties": False,
        },
        output_schema=RESULT_SCHEMA,
        writes=True,
    ),
    Tool(
        name="get_review_result",
        title="Get a review's answer",
        description=(
            "The answer to a review request, waiting up to wait_seconds (at most "
            f"{MAX_WAIT}) while it is pending. status pending means nobody has answered yet: call again. "
            "status timed_out or cancelled means no human answer will come."
        ),
        input_schema={
            "type": "object",
            "properties": {"request_id": REQUEST_ID, "wait_seconds": WAIT},
            "required": ["request_id"],
            "additionalProperties": False,
        },
        output_schema=RESULT_SCHEMA,
        writes=False,
    ),
    Tool(
        name="list_pending_reviews",
        title="List pending reviews",
        description="The review requests of this deployment still waiting for a human, oldest first.",
        input_schema={
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                "method_name": STRING,
                "flow_id": STRING,
            },
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "reviews": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "request_id": STRING,
                            "message": STRING,
                            "method_name": STRING,
                            "flow_id": STRING,
                            "assigned_to_email": STRING,
                            "created_at": STRING,
                            "due_at": {"type": ["string", "null"]},
                        },
                    },
                }
            },
            "required": ["reviews"],
        },
        writes=False,
    ),
    Tool(
        name="cancel_review",
        title="Cancel a pending review",
        description="Withdraw a pending review request (the reviewer can no longer answer it). Fails with "
        "not_pending if it was already answered.",
        input_schema={
            "type": "object",
            "properties": {"request_id": REQUEST_ID, "reason": {"type": "string", "maxLength": 500}},
            "required": ["request_id"],
            "additionalProperties": False,
        },
        output_schema=RESULT_SCHEMA,
        writes=True,
    ),
    Tool(
        name="approval_prompt",
        title="Ask a human to allow a tool call",
        description=(
            "Claude Code's --permission-prompt-tool: a person sees the tool name and its input and allows or "
            "denies it (and may edit the input, when this server allows editing). Waits up to "
            'HITL_MCP_PROMPT_WAIT seconds; returns the text {"behavior": "allow", "updatedInput": {...}} '
            'or {"behavior": "deny", "message": "..."}. No answer in time denies.'
        ),
        input_schema={
            "type": "object",
            "properties": {
                "tool_name": {"type": "string", "minLength": 1, "description": "The tool that wants to run."},
                "input": {**JSON_OBJECT, "description": "The arguments it would run with."},
                "tool_use_id": {"type": "string", "description": "Claude Code's id of this tool use."},
            },
            "required": ["tool_name", "input"],
            "additionalProperties": True,
        },
        output_schema={
            "type": "object",
            "properties": {
                "behavior": {"enum": ["allow", "deny"]},
                "updatedInput": JSON_OBJECT,
                "message": STRING,
            },
            "required": ["behavior"],
        },
        writes=True,
    ),
]
BY_NAME = {tool.name: tool for tool in TOOLS}


def tools_for(principal: ApiKeyPrincipal) -> list[Tool]:
    """A read-only key sees (and may call) only the tools that read."""
    return [tool for tool in TOOLS if can_write(principal) or not tool.writes]


def can_write(principal: ApiKeyPrincipal) -> bool:
    return principal.key.access == ApiKey.Access.FULL


# --- the calls (synchronous; run in a worker thread) ----------------------------------------------------


def hitl_error(exc: HitlError) -> ToolError:
    return ToolError(exc.code, exc.detail)


def visible(principal: ApiKeyPrincipal, request_id: str, action: Action = "view") -> HITLRequest:
    try:
        found = (
            HITLRequest.objects.restrict(principal, action).select_related("resolution").filter(pk=request_id).first()
        )
    except (TypeError, ValueError, DjangoValidationError):
        found = None
    if found is None:
        raise ToolError("not_found", f"No review request {request_id} in this deployment.")
    return found


def outcome(request: HITLRequest) -> dict[str, Any]:
    return {"status": request.status, "request_id": str(request.pk), **result_of(request)}


def status_of(request_id: str) -> str:
    return HITLRequest.objects.filter(pk=request_id).values_list("status", flat=True).first() or Status.PENDING


def create_review(principal: ApiKeyPrincipal, arguments: dict[str, Any]) -> str:
    """Create the request (once per idempotency key); its id."""
    data = {name: value for name, value in arguments.items() if name in CREATE_FIELDS}
    if "mode" not in data and "emit_options" not in data and "options" not in data and "schema" not in data:
        data["mode"] = Mode.TEXT  # SPEC §2: free-form feedback when neither options nor a mode is given
    key = arguments.get("idempotency_key")
    row = None
    if key:
        digest = idempotency.fingerprint("MCP", "request_human_review", data)
        try:
            claimed = idempotency.claim(f"key:{principal.key.pk}", idempotency.validate_key(key), digest)
        except exceptions.APIException as exc:
            raise ToolError(str(exc.get_codes()), str(exc.detail)) from None
        if isinstance(claimed, Response):
            return str(claimed.data["request_id"])
        row = claimed
    try:
        created = services.create_request(
            principal.key.deployment, data, actor=principal_label(principal), source=Source.API
        )
    except BaseException as exc:
        if row is not None:
            idempotency.release(row)
        if isinstance(exc, HitlError):
            raise hitl_error(exc) from None
        raise
    if row is not None:
        idempotency.complete(row, Response({"request_id": str(created.pk)}, status=201))
    return str(created.pk)


def list_pending(principal: ApiKeyPrincipal, arguments: dict[str, Any]) -> dict[str, Any]:
    queryset = HITLRequest.objects.restrict(principal, "view").filter(status=Status.PENDING)
    for field in ("method_name", "flow_id"):
        if arguments.get(field):
            queryset = queryset.filter(**{field: arguments[field]})
    limit = int(arguments.get("limit") or 50)
    rows = queryset.order_by("created_at", "id")[:limit]
    return {
        "reviews": [
            {
                "request_id": str(r.pk),
                "message": r.message,
                "method_name": r.method_name,
                "flow_id": r.flow_id,
                "assigned_to_email": r.assigned_to_email,
                "created_at": r.created_at.isoformat(),
                "due_at": r.due_at.isoformat() if r.due_at else None,
            }
            for r in rows
        ]
    }


def cancel_review(principal: ApiKeyPrincipal, arguments: dict[str, Any]) -> dict[str, Any]:
    request = visible(principal, arguments["request_id"])
    if not HITLRequest.objects.restrict(principal, "manage").filter(pk=request.pk).exists():
        raise ToolError("permission_denied", "This key may view this request but not cancel it.")
    try:
        services.cancel_request(
            request.pk, actor=principal_label(principal), source=Source.API, reason=arguments.get("reason") or ""
        )
    except HitlError as exc:
        raise hitl_error(exc) from None
    return outcome(visible(principal, str(request.pk)))


# --- approval_prompt: Claude Code's permission-prompt contract ------------------------------------------

FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(?P<body>.*?)\n?```\s*$", re.DOTALL)


def prompt_wait() -> int:
    return int(settings.HITL_MCP_PROMPT_WAIT)


def create_prompt(principal: ApiKeyPrincipal, arguments: dict[str, Any]) -> str:
    tool_name = str(arguments["tool_name"])[:200]
    tool_input = arguments.get("input")
    if not isinstance(tool_input, dict):
        raise ToolError("invalid", "input: the tool's arguments, a JSON object.")
    pretty = json.dumps(tool_input, indent=2, ensure_ascii=False, sort_keys=True)
    data = {
        "message": f"Allow the agent to run {tool_name}?",
        "mode": Mode.APPROVAL,
        "content": f"```json\n{pretty}\n```",
        "state": {"tool_name": tool_name, "input": tool_input, "tool_use_id": arguments.get("tool_use_id") or ""},
        "method_name": "approval_prompt",
        "editable": bool(settings.HITL_MCP_PROMPT_EDITABLE),
        "metadata": {"mcp_tool": "approval_prompt", "tool_name": tool_name},
    }
    try:
        created = services.create_request(
            principal.key.deployment, data, actor=principal_label(principal), source=Source.API
        )
    except HitlError as exc:
        raise hitl_error(exc) from None
    return str(created.pk)


def prompt_decision(principal: ApiKeyPrincipal, request_id: str, original: dict[str, Any]) -> dict[str, Any]:
    """The permission answer for a resolved request; on a timeout (still pending) cancel it and deny."""
    request = visible(principal, request_id)
    if request.is_pending:
        try:
            services.cancel_request(
                request.pk, actor="mcp approval_prompt", source=Source.API, reason="No answer in time."
            )
        except HitlError:
            request = visible(principal, request_id)  # answered in the same instant: that answer stands
        else:
            return {"behavior": "deny", "message": f"No reviewer answered within {prompt_wait()} seconds."}
    result = result_of(request)
    if request.status in (Status.RESPONDED, Status.AUTO_RESPONDED) and result.get("outcome") == "approved":
        updated = original
        edited = result.get("edited_output")
        if edited:
            match = FENCE.match(edited)
            try:
                parsed = json.loads(match.group("body") if match else edited)
            except ValueError:
                return {"behavior": "deny", "message": "The reviewer's edited input is not valid JSON."}
            if not isinstance(parsed, dict):
                return {"behavior": "deny", "message": "The reviewer's edited input is not a JSON object."}
            updated = parsed
        return {"behavior": "allow", "updatedInput": updated}
    who = result.get("responder") or "the reviewer"
    message = (result.get("feedback") or "").strip() or f"Denied by {who}."
    if request.status in (Status.CANCELLED, Status.TIMED_OUT):
        message = f"The request was {request.get_status_display().lower()}: {message}"
    return {"behavior": "deny", "message": message}
