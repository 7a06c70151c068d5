"""What the review page shows besides the request itself: the flow state as a readable tree, the run's
step history and its earlier requests, and the deadline badges the inbox shares."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from hitl.models import HITLRequest, Status

MAX_DEPTH = 8
MAX_ITEMS = 200
MAX_TEXT = 2000


def state_tree(value: Any, depth: int = 0) -> SafeString:
    """Nested `<ul class="tree">` for a JSON value; every string is escaped by format_html.

    Objects and lists below the first level fold into <details> so a large state stays readable;
    very deep, long or wide values are cut (the raw JSON is one click away on the page).
    """
    if isinstance(value, dict):
        if not value:
            return format_html('<span class="tree-empty">{}</span>', "{ }")
        items = list(value.items())
    elif isinstance(value, list):
        if not value:
            return format_html('<span class="tree-empty">{}</span>', "[ ]")
        items = [(f"{i}", v) for i, v in enumerate(value)]
    else:
        return _scalar(value)
    if depth >= MAX_DEPTH:
        return format_html('<span class="tree-more">{}</span>', "… (deeper levels in the raw JSON)")
    rows = []
    for key, child in items[:MAX_ITEMS]:
        if isinstance(child, dict | list) and child:
            size = f"{len(child)} {'keys' if isinstance(child, dict) else 'items'}"
            rows.append(
                format_html(
                    '<li><details{}><summary><span class="tree-key">{}</span> <span class="tree-meta">{}</span>'
                    "</summary>{}</details></li>",
                    mark_safe(" open") if depth == 0 else "",  # noqa: S308 (a constant)
                    key,
                    size,
                    state_tree(child, depth + 1),
                )
            )
        else:
            rows.append(format_html('<li><span class="tree-key">{}</span> {}</li>', key, state_tree(child, depth + 1)))
    more = ""
    if len(items) > MAX_ITEMS:
        more = format_html('<li class="tree-more">… {} more</li>', len(items) - MAX_ITEMS)
    return format_html('<ul class="tree">{}{}</ul>', format_html_join("", "{}", ((r,) for r in rows)), more)


def _scalar(value: Any) -> SafeString:
    if value is None:
        return format_html('<span class="tree-null">{}</span>', "null")
    if isinstance(value, bool):
        return format_html('<span class="tree-bool">{}</span>', "true" if value else "false")
    if isinstance(value, int | float):
        return format_html('<span class="tree-num">{}</span>', value)
    text = str(value)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    return format_html('<span class="tree-str">{}</span>', text)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@dataclass(frozen=True)
class Deadline:
    """A badge: `kind` is a CSS modifier (overdue, soon, ok, auto), `text` what it says."""

    kind: str
    text: str
    title: str = ""


def _span(delta_seconds: float) -> str:
    seconds = abs(int(delta_seconds))
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def is_overdue(request: HITLRequest, now: datetime | None = None) -> bool:
    """Past its SLA while pending: the sweeper's flag, or already past between two sweeps."""
    now = now or timezone.now()
    if request.status != Status.PENDING:
        return False
    return request.overdue or (request.sla_due_at is not None and request.sla_due_at <= now)


def deadlines(request: HITLRequest, now: datetime | None = None) -> list[Deadline]:
    """SLA and timeout badges for a pending request (nothing once it is resolved)."""
    now = now or timezone.now()
    if request.status != Status.PENDING:
        return []
    badges: list[Deadline] = []
    if request.sla_due_at:
        left = (request.sla_due_at - now).total_seconds()
        title = f"SLA due {request.sla_due_at:%Y-%m-%d %H:%M} UTC"
        if is_overdue(request, now):
            badges.append(Deadline("overdue", f"Overdue {_span(left)}", title))
        elif left < 3600:
            badges.append(Deadline("soon", f"SLA in {_span(left)}", title))
        else:
            badges.append(Deadline("ok", f"SLA in {_span(left)}", title))
    if request.due_at:
        left = (request.due_at - now).total_seconds()
        what = f"Auto-answer “{request.default_outcome}”" if request.default_outcome else "Times out"
        badges.append(Deadline("auto", f"{what} in {_span(left)}", f"Deadline {request.due_at:%Y-%m-%d %H:%M} UTC"))
    return badges


def step_history(request: HITLRequest) -> list[Any]:
    """The server-side flow run's steps, when this request belongs to one of our runs (SPEC §8)."""
    from flows.models import FlowRun  # flows builds on hitl: import late

    try:
        run_id = uuid.UUID(request.flow_id)
    except ValueError:  # flow_id is the caller's string: only our own runs use UUIDs
        return []
    run = FlowRun.objects.filter(pk=run_id, deployment_id=request.deployment_id).first()
    if run is None:
        return []
    return list(run.steps.order_by("seq"))
