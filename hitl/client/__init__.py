"""`hitl.client` is an alias of `hitl_client`, the client's own distribution (hitl/client/pyproject.toml),
kept so that existing `from hitl.client import HitlClient` code works. It re-exports the installed
`hitl_client`, or, where only the server is installed (or in a checkout), the copy shipped beside this
file: the same source, released with the server."""

try:
    from hitl_client import *  # noqa: F403
    from hitl_client import __all__ as __all__
    from hitl_client import __version__ as __version__
except ModuleNotFoundError as exc:
    if exc.name != "hitl_client":
        raise
    from hitl.client.hitl_client import *  # type: ignore[assignment]  # noqa: F403
    from hitl.client.hitl_client import __all__ as __all__  # type: ignore[assignment]
    from hitl.client.hitl_client import __version__ as __version__
