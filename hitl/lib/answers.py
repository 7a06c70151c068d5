"""Reading an answer out of free text, the same for every channel (SPEC §4).

"Approved!", "approved.", "APPROVED" all mean `approved`; "needs_revision: tighten the intro" and
"Needs revision - tighten the intro" mean `needs_revision` with feedback "tighten the intro".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

APPROVE_WORDS = ("approve", "approved", "lgtm", "yes", "accept", "accepted")
REJECT_WORDS = ("reject", "rejected", "no", "decline", "declined", "deny", "denied")
# Short words mean something else at the start of a sentence ("No problem", "Yes but …"): they count
# only alone on their line or followed by punctuation.
_STRICT_WORDS = {"yes", "no"}
_TRAILING = r"(?=$|[\s.,:;!?\-\u2013\u2014)])"


def normalize(text: str) -> str:
    """Case-, punctuation- and separator-insensitive form: 'Needs revision!' -> 'needs_revision'."""
    return re.sub(r"[\s_\-]+", "_", re.sub(r"[^\w\s\-]", "", text.lower())).strip("_")


def match_option(text: str, options: list[str]) -> str | None:
    """The option `text` names exactly (after normalising), or None."""
    wanted = normalize(text)
    if not wanted:
        return None
    for option in options:
        if normalize(option) == wanted:
            return option
    return None


def _option_regex(option: str, strict: bool = False) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", option.strip()) if w]
    body = r"[\s_\-]+".join(words)
    trailing = r"(?=$|[.,:;!?\-\u2013\u2014)])" if strict else _TRAILING
    return re.compile(rf"^\s*[*_\"'`]*{body}[*_\"'`]*{trailing}", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    outcome: str | None
    feedback: str


def split_leading_option(text: str, options: list[str], strict: frozenset[str] = frozenset()) -> Parsed:
    """If the first non-empty line is, or starts with, an option, return it and the rest as feedback.

    Longer options are tried first so `approved_with_changes` wins over `approved`.
    """
    lines = (text or "").strip().splitlines()
    if not lines:
        return Parsed(None, "")
    first, rest = lines[0], "\n".join(lines[1:]).strip()
    for option in sorted(options, key=len, reverse=True):
        match = _option_regex(option, strict=option.lower() in strict).match(first)
        if match:
            remainder = first[match.end() :].lstrip(" \t.,:;!?-\u2013\u2014)").strip()
            feedback = "\n\n".join(part for part in (remainder, rest) if part)
            return Parsed(option, feedback)
    return Parsed(None, (text or "").strip())


def parse_emit(text: str, emit_options: list[str]) -> Parsed:
    return split_leading_option(text, emit_options)


def parse_approval(text: str) -> Parsed:
    """approve/approved/yes/lgtm → approved; reject/rejected/no → rejected."""
    parsed = split_leading_option(text, list(APPROVE_WORDS + REJECT_WORDS), strict=frozenset(_STRICT_WORDS))
    if parsed.outcome is None:
        return parsed
    outcome = "approved" if parsed.outcome in APPROVE_WORDS else "rejected"
    return Parsed(outcome, parsed.feedback)


def approval_outcome(word: str) -> str | None:
    """An explicit outcome given for an approval request ('approve', 'Approved', 'reject', ...)."""
    key = normalize(word)
    if key in APPROVE_WORDS:
        return "approved"
    if key in REJECT_WORDS:
        return "rejected"
    return None
