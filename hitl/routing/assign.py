"""Choose the assignee of a new request (SPEC §3). Pure: give it the rules, get an Assignment."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from hitl.lib.addresses import clean_email
from hitl.lib.paths import resolve_path
from hitl.routing.conditions import evaluate_all, parse_conditions

if TYPE_CHECKING:
    from hitl.models import RoutingRule


@dataclass(frozen=True)
class Assignment:
    email: str
    step: str  # an AssignmentStep value
    rule: RoutingRule | None = None
    problems: tuple[str, ...] = ()  # conditions that could not be evaluated (step condition_error)


def rule_matches(rule: RoutingRule, method_name: str, flow_name: str, state: Any) -> bool:
    return rule_verdict(rule, method_name, flow_name, state)[0] is True


def rule_verdict(rule: RoutingRule, method_name: str, flow_name: str, state: Any) -> tuple[bool | None, list[str]]:
    """Whether `rule` takes the request: True, False, or None (a condition could not be evaluated)."""
    # fnmatchcase: shell-style and case-sensitive, like the seed's table (`approve_*`, `review_?`).
    if not fnmatchcase(method_name or "", rule.method_pattern):
        return False, []
    if rule.flow_pattern and not fnmatchcase(flow_name or "", rule.flow_pattern):
        return False, []
    return evaluate_all(parse_conditions(rule.conditions), state)


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
        if not rule.enabled:
            continue
        verdict, problems = rule_verdict(rule, method_name, flow_name, state or {})
        if verdict is None:
            # Fails closed: a rule that may have matched is not skipped for a weaker one after it; the
            # deployment's creator decides, and the request says why (SPEC §3, README "Routing").
            creator = creator_email() if callable(creator_email) else creator_email
            return Assignment(creator, "condition_error", rule, tuple(problems))
        if not verdict:
            continue
        if rule.approvers:
            # A pool rule (SPEC §13): the seats are resolved by create_request; the first is the assignee.
            return Assignment("", "rule_pool", rule)
        if rule.assign_from_input:
            email = clean_email(resolve_path(state or {}, rule.assign_from_input, None))
            if email:
                return Assignment(email, "rule_input", rule)
        if rule.assign_to_email:
            return Assignment(rule.assign_to_email.lower(), "rule_email", rule)
        # The first matching rule decides; if it yields nothing the creator gets it (SPEC §3.3).
        break
    return Assignment(creator_email() if callable(creator_email) else creator_email, "creator")
