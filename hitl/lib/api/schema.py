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


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in COMMON.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": reference}}}
                )
    return result
