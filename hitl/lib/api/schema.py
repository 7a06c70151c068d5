"""OpenAPI post-processing: every operation documents the API's error shape for the errors any
endpoint can give (bad input, no or bad credentials, no permission, not found)."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine-readable error code."},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Per-field messages (validation errors).",
        },
    },
    "required": ["detail", "code"],
    "additionalProperties": True,
}
COMMON = {
    "400": "Invalid input.",
    "401": "Missing or invalid credentials.",
    "403": "Not allowed.",
    "404": "Not found, or not visible to you.",
    "405": "Method not allowed.",
    "415": "Unsupported media type.",
}
# What an `Idempotency-Key` adds (SPEC §15), on the operations that take one.
IDEMPOTENT = {
    "409": "A call with this Idempotency-Key is still in progress (idempotency_in_progress), or the state conflicts.",
    "422": "This Idempotency-Key was already used with a different body (idempotency_key_reused).",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            takes_key = any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))
            for status, description in {**COMMON, **(IDEMPOTENT if takes_key else {})}.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": reference}}}
                )
    return result
