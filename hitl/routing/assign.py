"""Choose the assignee of a new request (SPEC §3). Pure: give it the rules, get an Assignment."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from hitl.lib.addresses import clean_email
from hitl.lib.paths import resolve_path
from hitl.routing.conditions import all_hold, parse_conditions

if TYPE_CHECKING:
    from hitl.models import RoutingRule


@dataclass(frozen=True)
class Assignment:
    email: str
    step: str  # an AssignmentStep value
    rule: RoutingRule | None = None


def rule_matches(rule: RoutingRule, method_name: str, flow_name: str, state: Any) -> bool:
    # fnmatchcase: shell-style and case-sensitive, like the seed's table (`approve_*`, `review_?`).
    if not fnmatchcase(method_name or "", rule.method_pattern):
        return False
    if rule.flow_pattern and not fnmatchcase(flow_name or "", rule.flow_pattern):
        return False
    return all_hold(parse_conditions(rule.conditions), state)


def choose_assignee(
    rules: Iterable[RoutingRule],
    *,
    creator_email: str | Callable[[], str],
    method_name: str,
    flow_name: str = "",
    state: Any = None,
    explicit: str | None = None,
) -> Assignment:
    """`explicit` (assign_to) wins; else the first matching rule (state path, then its email);
    else the deployment creator. `creator_email` may be a callable, so that only requests falling through
    to the creator pay for loading them."""
    if explicit:
        return Assignment(explicit.lower(), "explicit")
    for rule in rules:
        if not rule.enabled or not rule_matches(rule, method_name, flow_name, state or {}):
            continue
        if rule.assign_from_input:
            email = clean_email(resolve_path(state or {}, rule.assign_from_input, None))
            if email:
                return Assignment(email, "rule_input", rule)
        if rule.assign_to_email:
            return Assignment(rule.assign_to_email.lower(), "rule_email", rule)
        # The first matching rule decides; if it yields nothing the creator gets it (SPEC §3.3).
        break
    return Assignment(creator_email() if callable(creator_email) else creator_email, "creator")
