"""Linear-time matching of a form field's `pattern` (SPEC §14): the pattern is parsed by Python's own
regular-expression parser and run as a Thompson NFA, every state at once, so a string of n characters
costs at most n × (number of states) steps whatever the pattern (no backtracking, no ReDoS).

It answers only "does the pattern match somewhere in the string" (JSON Schema's `pattern`), which is
the same for greedy and lazy quantifiers. Backreferences, lookarounds, conditionals and inline flags
cannot be run this way and are refused (`PatternError`), as is a pattern whose expansion of counted
repetitions ({2,40}) would exceed MAX_STATES.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

MAX_STATES = 2000

Pred = Callable[[str], bool]


class PatternError(ValueError):
    pass


def _category(name: str) -> Pred:
    table: dict[str, Pred] = {
        "CATEGORY_DIGIT": str.isdecimal,
        "CATEGORY_NOT_DIGIT": lambda c: not c.isdecimal(),
        "CATEGORY_SPACE": str.isspace,
        "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
        "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
        "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
    }
    if name not in table:
        raise PatternError(f"{name.lower()} is not supported")
    return table[name]


def _equal(wanted: str) -> Pred:
    return lambda c: c == wanted


def _unequal(wanted: str) -> Pred:
    return lambda c: c != wanted


def _between(low: int, high: int) -> Pred:
    return lambda c: low <= ord(c) <= high


def _in(items: list[tuple[Any, Any]]) -> Pred:
    negate = False
    tests: list[Pred] = []
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            tests.append(_equal(chr(arg)))
        elif name == "RANGE":
            tests.append(_between(int(arg[0]), int(arg[1])))
        elif name == "CATEGORY":
            tests.append(_category(str(arg)))
        else:
            raise PatternError(f"{name.lower()} in a character class is not supported")
    if negate:
        return lambda c: not any(t(c) for t in tests)
    return lambda c: any(t(c) for t in tests)


class _Nfa:
    """States: ("char", pred, next), ("split", [next, …]), ("assert", test(s, pos), next), ("match",)."""

    def __init__(self) -> None:
        self.states: list[list[Any]] = []

    def add(self, state: list[Any]) -> int:
        if len(self.states) >= MAX_STATES:
            raise PatternError(f"too complex: more than {MAX_STATES} states once counted repetitions are expanded")
        self.states.append(state)
        return len(self.states) - 1

    def seq(self, items: Any, nxt: int) -> int:
        for op, arg in reversed(list(items)):
            nxt = self.node(str(op), arg, nxt)
        return nxt

    def node(self, name: str, arg: Any, nxt: int) -> int:
        if name == "LITERAL":
            return self.add(["char", _equal(chr(arg)), nxt])
        if name == "NOT_LITERAL":
            return self.add(["char", _unequal(chr(arg)), nxt])
        if name == "ANY":
            return self.add(["char", lambda c: c != "\n", nxt])
        if name == "IN":
            return self.add(["char", _in(arg), nxt])
        if name == "CATEGORY":
            return self.add(["char", _category(str(arg)), nxt])
        if name == "AT":
            return self.add(["assert", _at(str(arg)), nxt])
        if name == "SUBPATTERN":
            if arg[1] or arg[2]:
                raise PatternError("inline flags are not supported")
            return self.seq(arg[-1], nxt)
        if name == "BRANCH":
            return self.add(["split", [self.seq(branch, nxt) for branch in arg[1]]])
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, items = arg
            current = nxt
            if high == re._constants.MAXREPEAT:  # type: ignore[attr-defined]
                loop = self.add(["split", []])
                self.states[loop][1] = [self.seq(items, loop), nxt]
                current = loop
            else:
                for _ in range(high - low):
                    current = self.add(["split", [self.seq(items, current), nxt]])
            for _ in range(low):
                current = self.seq(items, current)
            return current
        raise PatternError(f"{name.lower().replace('_', ' ')} is not supported")


def _word(s: str, pos: int) -> bool:
    return 0 <= pos < len(s) and (s[pos].isalnum() or s[pos] == "_")


def _at(name: str) -> Callable[[str, int], bool]:
    table: dict[str, Callable[[str, int], bool]] = {
        "AT_BEGINNING": lambda s, pos: pos == 0,
        "AT_BEGINNING_STRING": lambda s, pos: pos == 0,
        "AT_END": lambda s, pos: pos == len(s) or (pos == len(s) - 1 and s[-1] == "\n"),
        "AT_END_STRING": lambda s, pos: pos == len(s),
        "AT_BOUNDARY": lambda s, pos: _word(s, pos - 1) != _word(s, pos),
        "AT_NON_BOUNDARY": lambda s, pos: _word(s, pos - 1) == _word(s, pos),
    }
    if name not in table:
        raise PatternError(f"{name.lower()} is not supported")
    return table[name]


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> tuple[_Nfa, int]:
    """The NFA of `pattern` and its start state. Raises PatternError (or re.error when it does not parse)."""
    from re import _parser  # type: ignore[attr-defined]

    parsed = _parser.parse(pattern)
    if parsed.state.flags & ~(re.UNICODE | getattr(re, "TEMPLATE", 0)):
        raise PatternError("inline flags are not supported")
    nfa = _Nfa()
    end = nfa.add(["match"])
    return nfa, nfa.seq(parsed, end)


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text` (re.search's yes or no), in O(len(text) × states)."""
    nfa, start = compile_pattern(pattern)
    states = nfa.states

    def closure(seeds: list[int], pos: int) -> set[int]:
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            state = states[index]
            if state[0] == "split":
                stack.extend(state[1])
            elif state[0] == "assert" and state[1](text, pos):
                stack.append(state[2])
        return seen

    current = closure([start], 0)
    for pos, char in enumerate(text):
        if any(states[i][0] == "match" for i in current):
            return True
        moved = [states[i][2] for i in current if states[i][0] == "char" and states[i][1](char)]
        current = closure([*moved, start], pos + 1)  # a match may also begin at the next character
    return any(states[i][0] == "match" for i in current)
