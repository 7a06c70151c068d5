"""Emit-option matching as the server does it (`hitl.lib.answers.split_leading_option`), for the CrewAI
integration: "Approved. Great article!" → ("approved", "Great article!").

A copy, not an import: the client is installed where the server is not (httpx only), so it can import
nothing from it. `tests/client/test_python_client.py` checks that both give the same answers.
"""

from __future__ import annotations

import re

__all__ = ["split_leading_option"]

_TRAILING = r"(?=$|[\s.,:;!?\-\u2013\u2014)])"


def _option_regex(option: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", option.strip()) if w]
    body = r"[\s_\-]+".join(words)
    return re.compile(rf"^\s*[*_\"'`]*{body}[*_\"'`]*{_TRAILING}", re.IGNORECASE)


def split_leading_option(text: str, options: list[str]) -> tuple[str | None, str]:
    """(option, feedback) when the first non-empty line is, or starts with, an option; else (None, text).

    Longer options are tried first so `approved_with_changes` wins over `approved`.
    """
    lines = (text or "").strip().splitlines()
    if not lines:
        return None, ""
    first, rest = lines[0], "\n".join(lines[1:]).strip()
    for option in sorted(options, key=len, reverse=True):
        match = _option_regex(option).match(first)
        if match:
            remainder = first[match.end() :].lstrip(" \t.,:;!?-\u2013\u2014)").strip()
            return option, "\n\n".join(part for part in (remainder, rest) if part)
    return None, (text or "").strip()
