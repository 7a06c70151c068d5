"""Alias of `hitl_client.crewai` (see hitl/client/__init__.py)."""

try:
    from hitl_client.crewai import *  # noqa: F403
    from hitl_client.crewai import __all__ as __all__
except ModuleNotFoundError as exc:
    if exc.name != "hitl_client":
        raise
    from hitl.client.hitl_client.crewai import *  # type: ignore[assignment]  # noqa: F403
    from hitl.client.hitl_client.crewai import __all__ as __all__  # type: ignore[assignment]
