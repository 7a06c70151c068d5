"""A run's queue of (method, payload) items: what an event adds to it, payloads as JSON, and the task
that runs its head. Every part of the engine writes the queue with these."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from flows.runtime import Condition, HumanFeedbackResult, MethodSpec
from hitl.lib.queue import enqueue


def _enqueue_step(run_id: Any, seq: int) -> None:
    transaction.on_commit(lambda: enqueue("flows.tasks.run_step", str(run_id), seq))


def to_json(value: Any) -> Any:
    """Step outputs are stored as JSON; pydantic models and feedback results are converted."""
    if isinstance(value, HumanFeedbackResult):
        return value.to_json()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict) and value.get("__human_feedback_result__"):
        return HumanFeedbackResult.from_json(value)
    return value


def listeners_for(methods: dict[str, MethodSpec], event: str, progress: dict[str, list[str]]) -> list[str]:
    """Methods that fire on `event`; `and_` listeners fire once every part was seen (then reset)."""
    fired = []
    for spec in methods.values():
        condition = spec.condition
        if condition is None or event not in condition.names():
            continue
        if condition.kind == "or" and _or_fires(condition, event, progress, spec.name):
            fired.append(spec.name)
        elif condition.kind == "and":
            seen = set(progress.get(spec.name, [])) | {event}
            if seen >= condition.names():
                progress.pop(spec.name, None)
                fired.append(spec.name)
            else:
                progress[spec.name] = sorted(seen)
    return fired


def _or_fires(condition: Condition, event: str, progress: dict[str, list[str]], key: str) -> bool:
    for item in condition.items:
        if item == event:
            return True
        if isinstance(item, Condition) and event in item.names():
            nested_key = f"{key}:{sorted(item.names())}"
            if item.kind == "or":
                return True
            seen = set(progress.get(nested_key, [])) | {event}
            if seen >= item.names():
                progress.pop(nested_key, None)
                return True
            progress[nested_key] = sorted(seen)
    return False
