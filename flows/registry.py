"""Flows are registered in code by name (SPEC §8): `@register("content_approval")`."""

from __future__ import annotations

from collections.abc import Callable

from flows.runtime import Flow

_REGISTRY: dict[str, type[Flow]] = {}


def register(name: str) -> Callable[[type[Flow]], type[Flow]]:
    def add(cls: type[Flow]) -> type[Flow]:
        if name == "*":  # the analytics' name for every flow (hitl.services.rollups.ALL_FLOWS)
            raise ValueError("'*' is reserved: it cannot name a flow")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a flow named {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.flow_name = name  # type: ignore[attr-defined]
        return cls

    return add


def get_flow(name: str) -> type[Flow] | None:
    return _REGISTRY.get(name)


def flow_names() -> list[str]:
    return sorted(_REGISTRY)
