"""`Authorization: Bearer hitl_<prefix>_<secret>` → the key's deployment (SPEC §7)."""

from __future__ import annotations

import hmac
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.lib.access import ApiKeyPrincipal
from accounts.models import KEY_PREFIX, ApiKey, hash_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, secret = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None
        secret = secret.strip()
        if not secret.startswith(KEY_PREFIX) or secret.count("_") < 2:
            raise exceptions.AuthenticationFailed("Malformed API key.", code="invalid_api_key")
        prefix = secret[len(KEY_PREFIX) :].split("_", 1)[0]
        # Not select_related("deployment"): most calls never read it, and the join costs more to build
        # than the one query creating a request spends loading it.
        try:
            key: ApiKey | None = ApiKey.objects.get(prefix=prefix)  # unique
        except ApiKey.DoesNotExist:
            key = None
        # Compare hashes in constant time; a missing key costs the same as a wrong one.
        expected = key.key_hash if key else "0" * 64
        if not hmac.compare_digest(expected, hash_key(secret)) or key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        if not key.is_active:
            raise exceptions.AuthenticationFailed("This API key was revoked.", code="revoked_api_key")
        key.touch()
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def _schema_extension() -> Any:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
        target_class = "accounts.api.authentication.ApiKeyAuthentication"
        name = "ApiKey"

        def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
            return {"type": "http", "scheme": "bearer", "description": "A deployment API key (hitl_…)."}

    return ApiKeyScheme


ApiKeyScheme = _schema_extension()
