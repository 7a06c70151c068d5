"""Validation of a new request's §2 fields, shared by the API, the flow runtime and scripts.

Every problem is reported per field, all at once, so a client fixes its payload in one go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hitl.lib import forms
from hitl.lib.addresses import clean_email
from hitl.lib.answers import normalize
from hitl.lib.errors import InvalidInput
from hitl.lib.paths import resolve_path

MAX_MESSAGE = 10_000
MAX_CONTENT = 500_000
MAX_JSON_BYTES = 512 * 1024
MAX_EMIT_OPTIONS = 50
MAX_OPTION_LENGTH = 100
MAX_CHOICES = 1000
MAX_TIMEOUT = 365 * 24 * 3600

MODES = ("emit", "approval", "choices", "text", "form")
CHANNELS = ("email", "telegram", "slack")
ON_TIMEOUT = ("default", "fail", "continue")
POLICIES = ("any", "all", "quorum")


@dataclass
class RequestInput:
    message: str
    mode: str
    flow_id: str = ""
    flow_name: str = ""
    method_name: str = ""
    content: str = ""
    emit_options: list[str] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    multiple: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    assign_to: str = ""
    channel: str = "email"
    timeout: int | None = None
    default_outcome: str = ""
    on_timeout: str = "default"
    link_ttl: int | None = None
    editable: bool = False
    # Several approvers (SPEC §13); `policy` stays "" for the classic single assignee.
    approvers: list[str] | None = None  # None: not given
    policy: str = ""
    required: int | None = None
    veto: bool = True
    requested_by: str = ""
    # Typed forms (SPEC §14).
    schema: dict[str, Any] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())


def _label(item: Any, path: str | None, fallbacks: tuple[str, ...]) -> Any:
    if path:
        return resolve_path(item, path, None)
    if isinstance(item, dict):
        for key in fallbacks:
            if key in item:
                return item[key]
        return None
    return item


def resolve_options(items: list[Any], label_path: str, value_path: str, description_path: str) -> list[dict[str, Any]]:
    """Turn raw items into `{id, label, value, description, raw}` (Fetch Hive's choice shape)."""
    resolved = []
    for index, item in enumerate(items, start=1):
        label = _label(item, label_path, ("label", "title", "name"))
        value = _label(item, value_path, ("value", "id", "url"))
        description = _label(item, description_path, ("description", "summary"))
        label_text = "" if label is None else str(label)
        resolved.append(
            {
                "id": f"option_{index}",
                "label": label_text or f"Option {index}",
                "value": label_text if value is None else value,
                "description": "" if description is None else str(description),
                "raw": item,
            }
        )
    return resolved


def validate_request_input(data: dict[str, Any]) -> RequestInput:
    """Check every §2 field; raise InvalidInput with all problems, or return the clean input."""
    errors: dict[str, list[str]] = {}

    def err(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    def text(name: str, limit: int, required: bool = False) -> str:
        value = data.get(name)
        if value is None or value == "":
            if required:
                err(name, "This field is required.")
            return ""
        if not isinstance(value, str):
            err(name, "Must be a string.")
            return ""
        if len(value) > limit:
            err(name, f"At most {limit} characters.")
        return value

    def obj(name: str) -> dict[str, Any]:
        value = data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            err(name, "Must be a JSON object.")
            return {}
        if _json_size(value) > MAX_JSON_BYTES:
            err(name, f"At most {MAX_JSON_BYTES // 1024} KiB of JSON.")
        return value

    def positive_int(name: str) -> int | None:
        value = data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > MAX_TIMEOUT:
            err(name, f"A whole number of seconds between 1 and {MAX_TIMEOUT}.")
            return None
        return value

    def boolean(name: str) -> bool:
        value = data.get(name, False)
        if not isinstance(value, bool):
            err(name, "Must be true or false.")
            return False
        return value

    def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
        value = data.get(name) or default
        if value not in allowed:
            err(name, f"One of: {', '.join(allowed)}.")
            return default
        return str(value)

    known = {f for f in RequestInput.__dataclass_fields__} | {
        "label_path",
        "value_path",
        "description_path",
        "deployment",
    }
    for unknown in sorted(set(data) - known):
        err(unknown, "Unknown field.")

    message = text("message", MAX_MESSAGE, required=True)
    content = text("content", MAX_CONTENT)
    flow_id = text("flow_id", 200)
    flow_name = text("flow_name", 200)
    method_name = text("method_name", 200)
    reserved = [name for name, value in (("flow_name", flow_name), ("method_name", method_name)) if value == "*"]
    for name in reserved:  # the analytics rollups' rows of all flows and methods (hitl.services.rollups)
        err(name, "'*' is reserved (it stands for every flow and method in the analytics); use another name.")
    state = obj("state")
    metadata = obj("metadata")
    channel = choice("channel", CHANNELS, "email")
    on_timeout = choice("on_timeout", ON_TIMEOUT, "default")
    timeout = positive_int("timeout")
    link_ttl = positive_int("link_ttl")
    multiple = boolean("multiple")
    editable = boolean("editable")
    default_outcome = text("default_outcome", MAX_OPTION_LENGTH)

    emit_raw = data.get("emit_options")
    emit_options: list[str] = []
    if emit_raw is not None:
        if not isinstance(emit_raw, list):
            err("emit_options", "Must be a list of strings.")
        else:
            for option in emit_raw:
                if not isinstance(option, str) or not option.strip():
                    err("emit_options", "Every option must be a non-empty string.")
                    break
                if len(option) > MAX_OPTION_LENGTH:
                    err("emit_options", f"Every option must be at most {MAX_OPTION_LENGTH} characters.")
                    break
            else:
                emit_options = [option.strip() for option in emit_raw]
                if len(emit_options) > MAX_EMIT_OPTIONS:
                    err("emit_options", f"At most {MAX_EMIT_OPTIONS} options.")
                if len({normalize(o) for o in emit_options}) != len(emit_options):
                    err("emit_options", "Options must be unique (compared case- and punctuation-insensitively).")

    mode_given = data.get("mode")
    if mode_given in (None, ""):
        # SPEC §2: neither emit_options nor options means free-form feedback (CrewAI's
        # @human_feedback without `emit`), so `{"message": "…"}` alone is a complete request.
        mode = "emit" if emit_raw is not None else ("choices" if data.get("options") is not None else "text")
        if data.get("schema") is not None and emit_raw is None and data.get("options") is None:
            mode = "form"
    else:
        mode = choice("mode", MODES, "emit")

    if mode == "emit" and not emit_options and "emit_options" not in errors:
        err("emit_options", "Emit mode needs at least one option (or choose mode approval, choices or text).")
    if mode != "emit" and emit_raw is not None:
        err("emit_options", f"Only used in emit mode, not {mode}.")

    options: list[dict[str, Any]] = []
    options_raw = data.get("options")
    if mode == "choices":
        if not isinstance(options_raw, list) or not options_raw:
            err("options", "Choices mode needs a non-empty list of options.")
        elif len(options_raw) > MAX_CHOICES:
            err("options", f"At most {MAX_CHOICES} options.")
        elif _json_size(options_raw) > MAX_JSON_BYTES:
            err("options", f"At most {MAX_JSON_BYTES // 1024} KiB of JSON.")
        else:
            paths = {}
            for name in ("label_path", "value_path", "description_path"):
                paths[name] = text(name, 200)
            options = resolve_options(options_raw, paths["label_path"], paths["value_path"], paths["description_path"])
    elif options_raw is not None:
        err("options", "Only used in choices mode.")
    if multiple and mode != "choices":
        err("multiple", "Only used in choices mode.")

    allowed_outcomes = emit_options if mode == "emit" else (["approved", "rejected"] if mode == "approval" else [])
    if default_outcome:
        if mode in ("choices", "text", "form"):
            err("default_outcome", f"Not available in {mode} mode.")
        elif default_outcome not in allowed_outcomes and "emit_options" not in errors:
            err("default_outcome", f"Must be one of: {', '.join(allowed_outcomes)}.")

    assign_to = ""
    if data.get("assign_to"):
        assign_to = clean_email(data.get("assign_to")) or ""
        if not assign_to:
            err("assign_to", "Must be a valid email address.")

    approvers: list[str] | None = None
    approvers_raw = data.get("approvers")
    if approvers_raw is not None:
        if not isinstance(approvers_raw, list) or not all(isinstance(a, str) for a in approvers_raw):
            err("approvers", "Must be a list of emails and group:<name> entries.")
        else:
            approvers = [a.strip() for a in approvers_raw]
    policy = ""
    if data.get("policy") not in (None, ""):
        policy = choice("policy", POLICIES, "any")
    required = None
    if data.get("required") is not None:
        value = data.get("required")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            err("required", "A whole number, at least 1.")
        else:
            required = value
    veto = True
    if data.get("veto") is not None:
        veto = boolean("veto")
    requested_by = ""
    if data.get("requested_by"):
        requested_by = clean_email(data.get("requested_by")) or ""
        if not requested_by:
            err("requested_by", "Must be a valid email address.")
    if approvers_raw is not None and assign_to:
        err("approvers", "Give approvers or assign_to, not both (approvers replaces the single assignee).")

    schema, initial, schema_bad = _form_fields(data, mode, err)

    if errors:
        raise InvalidInput(errors, code="invalid_schema" if schema_bad else "reserved_name" if reserved else "invalid")
    return RequestInput(
        approvers=approvers,
        policy=policy,
        required=required,
        veto=veto,
        requested_by=requested_by,
        message=message,
        mode=mode,
        flow_id=flow_id,
        flow_name=flow_name,
        method_name=method_name,
        content=content,
        emit_options=emit_options,
        options=options,
        multiple=multiple,
        state=state,
        metadata=metadata,
        assign_to=assign_to,
        channel=channel,
        timeout=timeout,
        default_outcome=default_outcome,
        on_timeout=on_timeout,
        link_ttl=link_ttl,
        editable=editable,
        schema=schema,
        initial=initial,
    )


def _form_fields(data: dict[str, Any], mode: str, err: Any) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """`schema` and `initial` of a form request (SPEC §14): every problem of the schema, then of the
    initial values against it. Returns them and whether the schema itself was refused."""
    schema, initial = data.get("schema"), data.get("initial")
    if mode != "form":
        for name in ("schema", "initial"):
            if data.get(name) is not None:
                err(name, "Only used in form mode.")
        return {}, {}, False
    if schema is None:
        err("schema", 'Form mode needs a schema: {"type": "object", "properties": {…}} (SPEC §14).')
        return {}, {}, True
    problems = forms.schema_problems(schema)
    for problem in problems:
        err("schema", problem)
    if problems:
        return {}, {}, True
    if initial is None:
        initial = {}
    if not isinstance(initial, dict):
        err("initial", "Must be a JSON object of the form's fields.")
        return schema, {}, False
    for name, messages in forms.check_values(schema, initial, partial=True).items():
        for message in messages:
            err("initial", f"{name}: {message}")
    return schema, initial, False
