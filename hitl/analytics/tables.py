"""A report as tables: formatted for the page, raw (seconds, ratios) for the CSV downloads."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from audit.lib.csvcells import Echo, escape_cell
from hitl.analytics.figures import DIMENSIONS, Analytics


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "int"  # text | outcome | int | seconds | share | datetime
    on_page: bool = True


def _metric_columns(backlog: bool) -> list[Column]:
    columns = [
        Column("created", "Created"),
        Column("resolved", "Resolved"),
        Column("responded", "Human"),
        Column("auto_responded", "Auto"),
        Column("timed_out", "Timed out", on_page=False),
        Column("cancelled", "Cancelled", on_page=False),
        Column("response_time_median", "Median", "seconds"),
        Column("response_time_p90", "p90", "seconds"),
        Column("response_time_mean", "Mean response", "seconds", on_page=False),
        Column("sla_met", "SLA met", on_page=False),
        Column("sla_total", "SLA due", on_page=False),
        Column("sla_share", "Within SLA", "share"),
        Column("auto_response_share", "Auto share", "share", on_page=False),
    ]
    if backlog:
        columns += [
            Column("pending", "Pending"),
            Column("overdue", "Overdue"),
            Column("oldest_pending_at", "Oldest pending since", "datetime", on_page=False),
        ]
    return columns


# name → (title, report key, leading columns, has backlog)
TABLES: dict[str, tuple[str, str, list[Column], bool]] = {
    "period": ("Per period", "by_period", [Column("period", "Period", "text")], False),
    "deployment": (
        "Per deployment",
        "by_deployment",
        [Column("key", "Id", "text", on_page=False), Column("label", "Deployment", "text")],
        True,
    ),
    "flow": ("Per flow", "by_flow", [Column("label", "Flow", "text")], True),
    "method": ("Per method", "by_method", [Column("label", "Method", "text")], True),
    "reviewer": ("Per reviewer (assignee)", "by_reviewer", [Column("label", "Reviewer", "text")], True),
    "decisions": (
        "Decisions",
        "decisions",
        [
            Column("outcome", "Outcome", "outcome"),
            Column("human", "Human"),
            Column("auto", "Auto"),
            Column("total", "Total"),
            Column("share", "Share", "share"),
        ],
        False,
    ),
    "channels": (
        "Channels",
        "channels",
        [Column("source", "Channel", "text"), Column("count", "Answers"), Column("share", "Share", "share")],
        False,
    ),
    "form_fields": (
        "Form answers (choice and yes/no fields)",
        "form_fields",
        [
            Column("label", "Field", "text"),
            Column("field", "Name", "text", on_page=False),
            Column("value", "Answer", "text"),
            Column("count", "Answers"),
            Column("share", "Share", "share"),
        ],
        False,
    ),
}
PLAIN = ("decisions", "channels", "form_fields")


def duration(seconds: float | None) -> str:
    """45 s, 17 min, 1 h 53 min, 2 d 4 h: two units at most, enough to compare at a glance."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    minutes, s = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {s} s" if s else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _display(value: Any, kind: str) -> str:
    if value is None or value == "":
        return {"text": "(none)", "outcome": "(no outcome)"}.get(kind, "—")
    if kind == "seconds":
        return duration(value)
    if kind == "share":
        return f"{value * 100:.1f} %".replace(".0 %", " %")
    if kind == "datetime":
        return str(value)[:16].replace("T", " ")
    if kind == "int":
        return f"{value:,}"
    return str(value)


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]

    @property
    def page_columns(self) -> list[Column]:
        return [c for c in self.columns if c.on_page]

    def page_rows(self, limit: int | None = None) -> list[list[tuple[str, str]]]:
        """[(formatted value, kind), ...] per row, for the template."""
        rows = self.rows[:limit] if limit else self.rows
        return [[(_display(row.get(c.key), c.kind), c.kind) for c in self.page_columns] for row in rows]

    def csv_lines(self) -> Iterator[str]:
        writer = csv.writer(Echo())
        yield writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            yield writer.writerow([escape_cell("" if row.get(c.key) is None else row.get(c.key)) for c in self.columns])


def build_table(name: str, rows: list[dict[str, Any]]) -> Table:
    title, _, leading, backlog = TABLES[name]
    columns = leading if name in PLAIN else [*leading, *_metric_columns(backlog)]
    return Table(name, title, columns, rows)


def build_tables(report: dict[str, Any]) -> list[Table]:
    # The form table only where there are typed forms (SPEC §14) to show.
    shown = [(name, key) for name, (_, key, _, _) in TABLES.items() if name != "form_fields" or report[key]]
    return [build_table(name, report[key]) for name, key in shown]


def table_rows(analytics: Analytics, name: str) -> list[dict[str, Any]]:
    """Only the figures one table needs (a CSV download computes nothing else)."""
    if name == "period":
        return analytics.by_period()
    if name in DIMENSIONS:
        return analytics.by_dimension(name)
    if name == "form_fields":
        return analytics.form_fields()
    return analytics.decisions() if name == "decisions" else analytics.channels()


def summary_cards(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The headline figures above the charts: a value and one line of detail each."""
    share = "share"
    return [
        {
            "label": "Created",
            "value": _display(summary["created"], "int"),
            "detail": f"{_display(summary['resolved'], 'int')} resolved in the period",
        },
        {
            "label": "Median response",
            "value": duration(summary["response_time_median"]),
            "detail": f"p90 {duration(summary['response_time_p90'])} · mean {duration(summary['response_time_mean'])}",
        },
        {
            "label": "Within SLA",
            "value": _display(summary["sla_share"], share),
            "detail": f"{summary['sla_met']} of {summary['sla_total']} with an SLA",
        },
        {
            "label": "Human answers",
            "value": _display(summary["responded"], "int"),
            "detail": f"{summary['auto_responded']} auto · {summary['timed_out']} timed out · "
            f"{summary['cancelled']} cancelled",
        },
        {
            "label": "Auto-responses",
            "value": _display(summary["auto_response_share"], share),
            "detail": "of answered or timed-out requests",
        },
        {
            "label": "Pending now",
            "value": _display(summary["pending"], "int"),
            "detail": (
                f"{summary['overdue']} overdue · oldest {duration(summary['oldest_pending_age_seconds'])}"
                if summary["pending"]
                else "nothing is waiting"
            ),
            "alert": "alert" if summary["overdue"] else "",
        },
    ]
