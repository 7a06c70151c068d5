"""CSV cells that spreadsheets will not run as formulas (OWASP "CSV injection"), reversibly.

Text starting with `= + - @`, a tab or a carriage return gets a leading `'`; so does text that already
starts with `'`, which makes the escape reversible: `unescape_cell` drops exactly one leading `'`.
The audit export's verifier relies on that to recompute hashes from a CSV file.
"""

from __future__ import annotations

from typing import Any

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    return value[1:] if value.startswith("'") else value


class Echo:
    """A file-like object whose write() returns the line, for csv.writer in streamed responses."""

    def write(self, value: str) -> str:
        return value
