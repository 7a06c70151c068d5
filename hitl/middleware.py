"""Project middleware: refuse NUL characters in API input with a clear 400 (PostgreSQL cannot store
them in text or JSON, and no legitimate review request, answer or filter contains one); answer 503, not
500, while the database is unreachable."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

_NUL_IN_BODY = re.compile(rb"\x00|\\u0000", re.IGNORECASE)
_NUL_IN_FORM = re.compile(rb"\x00|%00", re.IGNORECASE)


class BodyLimitMiddleware:
    """Bodies over the limit are refused before anything reads them, by their Content-Length (Django
    reads no more than that): HITL_MAX_BODY_BYTES everywhere, HITL_INBOUND_MAX_BYTES on the Anymail
    inbound URLs, where a reply with attachments is big and its text is still wanted. The API answers
    in its error shape; inbound mail over its limit is recorded and its sender told (hitl.inbound.limits).
    A message inside an inbound post that no parser can walk is recorded and answered 200, so the ESP
    does not retry it forever; our own failures there still answer 5xx."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from hitl.inbound import limits

        inbound = limits.is_inbound(request)
        limit = settings.HITL_INBOUND_MAX_BYTES if inbound else settings.HITL_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            if inbound:
                return limits.refuse_oversized(request, length)
            detail = f"The body is over {limit} bytes."
            if request.path.startswith("/api/") or request.path.startswith("/mcp/"):
                return JsonResponse({"detail": detail, "code": "too_large"}, status=400)
            return HttpResponse(detail, status=413, content_type="text/plain")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from hitl.inbound import limits

        if limits.is_inbound(request) and isinstance(exception, limits.UNPROCESSABLE):
            return limits.refuse_unprocessable(request, exception)
        return None


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            has_nul = request.path.startswith("/api/") and self._has_nul(request)
        except RequestDataTooBig:
            # Reading the body is where Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE: the API's shape.
            limit = settings.HITL_MAX_BODY_BYTES
            return JsonResponse({"detail": f"The body is over {limit} bytes.", "code": "too_large"}, status=400)
        if has_nul:
            return JsonResponse(
                {"detail": "Input must not contain NUL characters (\\u0000).", "code": "invalid"}, status=400
            )
        return self.get_response(request)

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        if "%00" in request.META.get("QUERY_STRING", "") or any("\x00" in v for v in request.GET.values()):
            return True
        if request.method in ("POST", "PUT", "PATCH"):
            form = request.content_type == "application/x-www-form-urlencoded"
            return bool((_NUL_IN_FORM if form else _NUL_IN_BODY).search(request.body))
        return False


class DatabaseUnavailableMiddleware:
    """A view that cannot reach the database (PostgreSQL restarting, a failover, the connection limit)
    answers 503 with `Retry-After`, not a 500, so clients know to retry. API paths get the API's error
    shape (`code: database_unavailable`); pages a short plain-text 503. Almost always nothing was
    written (the transaction died with the connection), but a connection lost during COMMIT leaves the
    outcome unknown, so the answer does not promise it: a client retrying a create looks it up first
    (e.g. by `flow_id`), see bench/pg_restart.py.

    Only exceptions raised by views arrive here (`process_exception`); one raised by another middleware
    (say, saving the session) still becomes the 500 handler's answer."""

    RETRY_AFTER = 5  # seconds: a PostgreSQL restart takes a few

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse(
                {
                    "detail": "The database is unavailable; retry in a few seconds.",
                    "code": "database_unavailable",
                },
                status=503,
            )
        else:
            response = HttpResponse(
                "The service is briefly unavailable (database). Please retry in a few seconds.\n",
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        response["Retry-After"] = str(self.RETRY_AFTER)
        return response


class ContentSecurityPolicyMiddleware:
    """The Content-Security-Policy header (settings.HITL_CONTENT_SECURITY_POLICY) on every response that
    does not set its own: pages, the admin, the API docs, errors. Django 5.2 has no CSP of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings

        response = self.get_response(request)
        if settings.HITL_CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.HITL_CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        return response
