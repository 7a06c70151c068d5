"""The errors flows raise to their callers, each with a stable `code` for the API."""

from __future__ import annotations

from hitl.lib.errors import HitlError


class FlowError(HitlError):
    """A kickoff or resume the caller got wrong; `code` is stable for the API."""

    def __init__(self, detail: str, code: str):
        super().__init__(detail, code=code)
        self.status = 409 if code == "not_pending" else 400
