"""The API's JSON parser: DRF's, bounded. Hostile JSON gets a 400 in the API's error shape, never a 500:
bodies over HITL_MAX_BODY_BYTES, nesting deeper than MAX_DEPTH (the decoder would raise
RecursionError), and strings no database can store (lone surrogates, NUL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        limit = settings.HITL_MAX_BODY_BYTES
        if request is not None and limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                raise ParseError(f"The body is over {limit} bytes.", code="too_large")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.", code="too_deep") from None
        check_json(data)
        return data


def check_json(data: Any) -> None:
    """Raise ParseError for nesting beyond MAX_DEPTH or strings a database cannot store. Iterative."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.", code="too_deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((item, depth + 1))


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ParseError("Strings may not contain NUL characters.", code="invalid_text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("Strings may not contain lone surrogates (invalid UTF-16).", code="invalid_text") from None
