"""Typed forms in analytics (SPEC §14): how the answers to each enum and yes/no field are distributed.

Computed in the database with a bounded number of queries, whatever the number of requests: one for
the distinct schemas of the form requests answered in the period (the fields worth counting), then
one GROUP BY per field on the answer's JSON value, for at most MAX_FIELDS fields.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from hitl.lib.forms import form_fields
from hitl.models import HITLRequest, Mode, Status, ordered_schema

MAX_FIELDS = 20
MAX_SCHEMAS = 200


def _counted_fields(answered: QuerySet[HITLRequest]) -> dict[str, tuple[str, str]]:
    """{field name: (label, kind)} of the enum and boolean fields in the answered forms' schemas."""
    fields: dict[str, tuple[str, str]] = {}
    schemas = answered.values_list("form_schema", "form_order").distinct()[:MAX_SCHEMAS]
    for schema, order in schemas:
        for spec in form_fields(ordered_schema(schema, order)):
            counted = spec.kind == "boolean" or (spec.kind == "string" and spec.enum)
            if counted and spec.name not in fields and len(fields) < MAX_FIELDS:
                fields[spec.name] = (spec.label, spec.kind)
    return fields


def _value(raw: Any, kind: str) -> str:
    if raw is None:
        return ""
    if kind == "boolean":  # SQLite's json_extract gives 1/0, PostgreSQL's ->> true/false
        return "yes" if str(raw).lower() in ("1", "true") else "no"
    return str(raw)


def form_field_distributions(requests: QuerySet[HITLRequest], in_resolved: Any) -> list[dict[str, Any]]:
    """Rows of {field, label, value, count, share}: the human answers resolved in the period, per
    field and value (value "" when a form left it empty)."""
    answered = requests.filter(in_resolved, mode=Mode.FORM, status=Status.RESPONDED).order_by()
    rows: list[dict[str, Any]] = []
    for name, (label, kind) in _counted_fields(answered).items():
        value = KeyTextTransform(name, KeyTransform("form", "resolution__result"))
        counts: dict[str, int] = {}
        for row in answered.annotate(v=value).values("v").annotate(n=Count("pk")):
            key = _value(row["v"], kind)
            counts[key] = counts.get(key, 0) + row["n"]
        total = sum(counts.values())
        for answer, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            rows.append(
                {"field": name, "label": label, "value": answer, "count": n, "share": n / total if total else None}
            )
    return rows
