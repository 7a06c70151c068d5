"""Counts that stay cheap however big the table grows.

An exact `COUNT(*)` reads every matching row: with a million requests that is most of a second on the
inbox's "All" tab. A person needs "1,000+" there, not the digits; so tabs count up to a cap
(`SELECT COUNT(*) FROM (… LIMIT cap + 1)`, which stops reading at the cap) and the page list goes as
deep as `PAGE_DEPTH` rows, with a hint to narrow the filters beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

TAB_CAP = 1000
PAGE_DEPTH = TAB_CAP  # so the active tab's count is also the pager's


@dataclass(frozen=True)
class CappedCount:
    """`value` is exact when `capped` is false; otherwise there are more than `value`."""

    value: int
    capped: bool

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"

    def __bool__(self) -> bool:
        return self.value > 0


def capped_count(queryset: QuerySet[Any], cap: int = TAB_CAP) -> CappedCount:
    """Count up to `cap` rows (one query that reads at most cap + 1 of them)."""
    found = queryset.order_by().values("pk")[: cap + 1].count()
    return CappedCount(min(found, cap), found > cap)


def capped_counts(querysets: dict[str, QuerySet[Any]], cap: int = TAB_CAP) -> dict[str, CappedCount]:
    """`capped_count` of several querysets (of one database) in a single round trip:
    `SELECT (SELECT COUNT(*) FROM (… LIMIT cap + 1)), (SELECT COUNT(*) FROM (…)), …`."""
    parts: list[str] = []
    params: list[Any] = []
    names: list[str] = []
    for name, queryset in querysets.items():
        try:
            sql, part_params = queryset.order_by().values("pk")[: cap + 1].query.sql_with_params()
        except EmptyResultSet:  # a filter that can match nothing (e.g. no permission at all)
            continue
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS capped_{len(parts)})")  # noqa: S608 - compiled by the ORM
        params.extend(part_params)
        names.append(name)
    found = dict.fromkeys(querysets, 0)
    if parts:
        db = next(iter(querysets.values())).db
        with connections[db].cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(parts)}", params)  # noqa: S608 - SQL compiled by the ORM
            found.update(zip(names, cursor.fetchone(), strict=True))
    return {name: CappedCount(min(n, cap), n > cap) for name, n in found.items()}


class CappedPaginator(Paginator):
    """A paginator over at most `depth` rows: page numbers beyond it are out of range.

    `count` is the number of rows reachable (at most `depth`); `capped` says whether there are more.
    """

    def __init__(
        self, object_list: QuerySet[Any], per_page: int, depth: int = PAGE_DEPTH, counted: CappedCount | None = None
    ) -> None:
        super().__init__(object_list, per_page)
        self.depth = depth
        self.counted = counted  # a count already made with cap == depth, to save the query

    @cached_property
    def _counted(self) -> CappedCount:
        if self.counted is not None:
            return self.counted
        return capped_count(self.object_list, self.depth)  # type: ignore[arg-type]

    @cached_property
    def count(self) -> int:
        return self._counted.value

    @property
    def capped(self) -> bool:
        return self._counted.capped

    @property
    def count_label(self) -> str:
        return str(self._counted)
