"""State conditions on routing rules: `amount >= 10000`, `region in ["eu", "uk"]`, `tier == "gold"`.

One condition per line; all must hold. The value is JSON (numbers, strings in quotes, lists, true/
false/null); a bare word is taken as a string, so `tier == gold` works too.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from typing import Any

from hitl.lib.paths import MISSING, resolve_path


class ConditionError(ValueError):
    pass


_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "in": lambda left, right: left in right,
}
_BARE_WORD = re.compile(r"^[\w@][\w.@\-]*$")
_LINE = re.compile(r"^\s*(?P<path>[A-Za-z0-9_][\w.\-]*)\s*(?P<op>==|!=|<=|>=|<|>|\bin\b)\s*(?P<value>.+?)\s*$")


@dataclass(frozen=True)
class Condition:
    path: str
    op: str
    value: Any

    def holds(self, state: Any) -> bool:
        left = resolve_path(state, self.path)
        if left is MISSING:
            return False
        if self.op == "in" and not isinstance(self.value, list | str):
            return False
        try:
            return bool(_OPS[self.op](left, self.value))
        except TypeError:
            # "abc" >= 10 and the like: a condition over mismatched types does not hold.
            return False

    def __str__(self) -> str:
        return f"{self.path} {self.op} {json.dumps(self.value)}"


def parse_condition(text: str) -> Condition:
    match = _LINE.match(text)
    if not match:
        raise ConditionError(
            f"Cannot read condition {text!r}: expected '<path> <op> <value>', op one of {', '.join(_OPS)}."
        )
    raw = match["value"]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        if not _BARE_WORD.match(raw):
            raise ConditionError(
                f'Invalid value in condition {text!r}: use JSON, e.g. 10000, "gold", [1, 2].'
            ) from None
        value = raw
    if match["op"] == "in" and not isinstance(value, list | str):
        raise ConditionError(f"'in' needs a list or a string on the right: {text!r}.")
    return Condition(match["path"], match["op"], value)


def parse_conditions(text: str) -> list[Condition]:
    return [parse_condition(line) for line in (text or "").splitlines() if line.strip()]


def all_hold(conditions: list[Condition], state: Any) -> bool:
    return all(condition.holds(state) for condition in conditions)
