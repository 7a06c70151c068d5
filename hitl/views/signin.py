"""Sign-in throttling for /accounts/login/ and /admin/login/: failed attempts are counted per account
and per address in the database (`hitl.services.throttle`), so every process shares the count."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from hitl.services import throttle

WINDOW_SECONDS = 15 * 60
FAILURES_PER_ACCOUNT = 5
FAILURES_PER_ADDRESS = 20
THROTTLED = (
    "Too many failed sign-in attempts for this account or from this address. "
    "Wait 15 minutes, then try again (or ask an administrator to reset your password)."
)


class ThrottledMixin:
    request: Any
    data: Any

    def _keys(self) -> list[tuple[str, int]]:
        username = str(self.data.get("username", "")).strip().lower()
        address = (self.request.META.get("REMOTE_ADDR", "") if self.request is not None else "") or "unknown"
        # Hashed: the counter table holds no usernames or addresses in clear.
        digest = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]
        return [(f"login-account:{digest}", FAILURES_PER_ACCOUNT), (f"login-address:{address}", FAILURES_PER_ADDRESS)]

    def clean(self) -> dict[str, Any]:
        keys = self._keys()
        if any(throttle.count(key, window_seconds=WINDOW_SECONDS) >= limit for key, limit in keys):
            raise ValidationError(THROTTLED, code="throttled")
        try:
            return super().clean()  # type: ignore[misc, no-any-return]
        except ValidationError as exc:
            if exc.code == "invalid_login":
                for key, limit in keys:
                    throttle.allow(key, limit=limit, window_seconds=WINDOW_SECONDS)
            raise


class ThrottledAuthenticationForm(ThrottledMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledMixin, AdminAuthenticationForm):
    pass
