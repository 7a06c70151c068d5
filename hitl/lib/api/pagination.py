"""List pagination that costs the same with a thousand requests or a million.

`limit`/`offset` as DRF's `LimitOffsetPagination` (default 50, at most 500 a page), but the total is
counted only up to `COUNT_CAP`: `count` is exact when there are at most that many matches and `null`
when there are more (an exact `COUNT(*)` over a million rows costs more than the page itself).
`next` does not depend on the count: a page reads `limit + 1` rows, and `next` is there exactly when
the extra row was.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from hitl.lib.counting import capped_count

COUNT_CAP = 1000
MAX_LIMIT = 500
MAX_OFFSET = 10**12  # beyond any table; a larger one overflows the database's integer (a 500)


class CappedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT
    template = None  # no browsable-API page controls (they need the total)

    def paginate_queryset(  # type: ignore[override]
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = min(self.get_offset(request), MAX_OFFSET)
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_more = len(rows) > self.limit
        rows = rows[: self.limit]
        self.total: int | None
        if not self.has_more and (rows or self.offset == 0):
            self.total = self.offset + len(rows)  # this page reached the end: the total is known
        else:
            counted = capped_count(queryset, COUNT_CAP)
            self.total = None if counted.capped else counted.value
        self.count = self.total if self.total is not None else self.offset + len(rows) + 1
        return rows

    def get_next_link(self) -> str | None:
        if not self.has_more:
            return None
        return super().get_next_link()

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.total,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"] = {
            "type": "integer",
            "nullable": True,
            "example": 123,
            "description": f"Exact when there are at most {COUNT_CAP:,} matches; null when there are more "
            "(follow `next` until it is null).",
        }
        return response
