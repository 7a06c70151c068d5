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
        return self.evaluate(state) is True

    def evaluate(self, state: Any) -> bool | None:
        """True or False; None when it cannot be evaluated (`amount >= 10000` against a list, an object
        or a non-numeric string): routing then fails closed rather than trying weaker rules. Numbers
        given as numeric strings ("12000") compare as numbers. A missing path does not hold."""
        left = resolve_path(state, self.path)
        if left is MISSING:
            return False
        if self.op == "in" and not isinstance(self.value, list | str):
            return None
        left, right = _as_numbers(left, self.value)
        try:
            return bool(_OPS[self.op](left, right))
        except TypeError:
            return None

    def problem(self, state: Any) -> str:
        """Why `evaluate` returned None, for the request's assignment info and the routing tester."""
        left = resolve_path(state, self.path)
        return f"{self} could not be evaluated: {self.path} is {json.dumps(left, default=str)[:80]}"

    def __str__(self) -> str:
        return f"{self.path} {self.op} {json.dumps(self.value)}"


_NUMBER = re.compile(r"^\s*-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def _number(value: Any) -> Any:
    if isinstance(value, str) and _NUMBER.match(value) and len(value) < 100:
        number = float(value)
        return int(number) if number.is_integer() and "e" not in value.lower() and "." not in value else number
    return value


def _as_numbers(left: Any, right: Any) -> tuple[Any, Any]:
    """A numeric string on one side of a number compares as that number."""
    is_num = lambda v: isinstance(v, int | float) and not isinstance(v, bool)  # noqa: E731
    if is_num(right) and isinstance(left, str):
        return _number(left), right
    if is_num(left) and isinstance(right, str):
        return left, _number(right)
    return left, right


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


def evaluate_all(conditions: list[Condition], state: Any) -> tuple[bool | None, list[str]]:
    """(True, []) when all hold, (False, []) when one does not, (None, problems) when none fails but
    some could not be evaluated: the rule may or may not match."""
    problems: list[str] = []
    for condition in conditions:
        verdict = condition.evaluate(state)
        if verdict is False:
            return False, []
        if verdict is None:
            problems.append(condition.problem(state))
    return (None, problems) if problems else (True, [])
