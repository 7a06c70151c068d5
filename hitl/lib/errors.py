"""Errors every channel understands. The API turns them into `{"detail", "code"}` responses, the
email channel into a polite error email; `code` values are stable (clients branch on them)."""

from __future__ import annotations

from typing import Any


class HitlError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.extra = extra or {}


class InvalidInput(HitlError):
    """Per-field validation errors: {field: [message, ...]}."""

    def __init__(self, errors: dict[str, list[str]], *, code: str = "invalid"):
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        super().__init__(summary or "Invalid input.", code=code, extra={"errors": errors})
        self.errors = errors


class InvalidAnswer(HitlError):
    """The answer does not fit the request (unknown option, missing text, ...)."""


class NotPending(HitlError):
    status = 409
    code = "not_pending"


class Reassigned(NotPending):
    """The answer came through a capability of an earlier assignment (a magic link or reply token
    issued before a reassignment, delegation or escalation): it no longer answers (SPEC §10)."""

    code = "reassigned"


class NotAllowed(HitlError):
    """The caller may see the request but not do this to it (e.g. delegate a request not theirs)."""

    status = 403
    code = "forbidden"
