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


# What makes a first line that starts with an option not that option (SPEC §4): a question right after
# it ("Approved? No way …") or a remainder that takes it back ("Approved, not yet", "Yes - never mind").
# "no" alone counts only with punctuation after it, so "Approved, no changes needed" still approves;
# a comment that merely starts with "Don't" ("Approved. Don't forget the date") is a comment.
_NEGATION = re.compile(
    r"^(?:not\b|never\b|nope\b|nah\b|no\s+way\b|no\s*(?:$|[.,:;!?\-\u2013\u2014])|"
    r"wait\b|hold\s+on\b|on\s+second\s+thought)",
    re.IGNORECASE,
)


def hedge(after: str) -> str | None:
    """How `after` (what follows an option on its line) questions ("question") or takes back
    ("negation") that option, or None when it is a plain comment."""
    if after.lstrip(" \t*_\"'`").startswith("?"):
        return "question"
    if _NEGATION.match(after.lstrip(" \t*_\"'`.,:;!-\u2013\u2014)").strip()):
        return "negation"
    return None


def is_hedged(after: str) -> bool:
    return hedge(after) is not None


@dataclass(frozen=True)
class Parsed:
    outcome: str | None
    feedback: str
    # The first line starts with an option but questions or takes it back: "question", "negation".
    hedge: str | None = None

    @property
    def ambiguous(self) -> bool:
        return self.hedge is not None


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
            after = first[match.end() :]
            remainder = after.lstrip(" \t.,:;!?-\u2013\u2014)").strip()
            feedback = "\n\n".join(part for part in (remainder, rest) if part)
            return Parsed(option, feedback, hedge(after))
    return Parsed(None, (text or "").strip())


def parse_emit(text: str, emit_options: list[str]) -> Parsed:
    return split_leading_option(text, emit_options)


_APPROVE_ANYWHERE = re.compile(r"\b(?:approve[sd]?|approving|accept(?:s|ed)?|lgtm)\b", re.IGNORECASE)
_REJECT_ANYWHERE = re.compile(r"\b(?:reject(?:s|ed)?|rejecting|decline[sd]?|den(?:y|ies|ied)|refuse[sd]?)\b", re.I)


_NEGATED_BEFORE = re.compile(r"(?:\bnot|n['\u2019]t|\bnever|\bno|\bwon['\u2019]t)\s+(?:\w+\s+)?$", re.IGNORECASE)


def parse_approval(text: str) -> Parsed:
    """approve/approved/yes/lgtm → approved; reject/rejected/no → rejected.

    A first line that also names the opposite ("Yes, reject it.", "No - approve it") is ambiguous."""
    parsed = split_leading_option(text, list(APPROVE_WORDS + REJECT_WORDS), strict=frozenset(_STRICT_WORDS))
    if parsed.outcome is None:
        return parsed
    approved = parsed.outcome in APPROVE_WORDS
    first_line = (text or "").strip().splitlines()[0]
    opposite = _REJECT_ANYWHERE if approved else _APPROVE_ANYWHERE
    # "Rejected, I can't approve this" agrees with itself: a negated opposite is no contradiction.
    contradicts = any(
        not _NEGATED_BEFORE.search(first_line[max(0, m.start() - 24) : m.start()])
        for m in opposite.finditer(first_line)
    )
    # A rejection followed by a negation agrees with itself ("No. Not until legal has seen it").
    taken_back = parsed.hedge == "question" or (parsed.hedge == "negation" and approved)
    why = "contradiction" if contradicts else (parsed.hedge if taken_back else None)
    return Parsed("approved" if approved else "rejected", parsed.feedback, why)


def approval_outcome(word: str) -> str | None:
    """An explicit outcome given for an approval request ('approve', 'Approved', 'reject', ...)."""
    key = normalize(word)
    if key in APPROVE_WORDS:
        return "approved"
    if key in REJECT_WORDS:
        return "rejected"
    return None
