"""Refuse NUL characters in API input with a clear 400: PostgreSQL cannot store them in text or
JSON, and no legitimate review request, answer or filter contains one."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

_NUL_IN_BODY = re.compile(rb"\x00|\\u0000", re.IGNORECASE)
_NUL_IN_FORM = re.compile(rb"\x00|%00", re.IGNORECASE)


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and self._has_nul(request):
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
