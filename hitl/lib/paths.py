"""Dotted paths into JSON values: `account.owner.email`, `items.0.title`."""

from __future__ import annotations

from typing import Any

MISSING = object()


def resolve_path(value: Any, path: str, default: Any = MISSING) -> Any:
    """Follow `path` through dicts (by key) and lists (by index). Returns `default` when it breaks."""
    current = value
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return default
    return current
