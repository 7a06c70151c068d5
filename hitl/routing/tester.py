"""The routing tester's verdicts: why each rule did or did not take a sample request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hitl.lib.addresses import clean_email
from hitl.lib.paths import resolve_path
from hitl.models import RoutingRule
from hitl.routing.assign import rule_verdict
from hitl.routing.conditions import ConditionError


@dataclass
class RuleVerdict:
    rule: RoutingRule
    matches: bool | None  # None: not evaluated (disabled, or after the deciding rule)
    note: str
    decides: bool = False


def evaluate_rules(
    rules: list[RoutingRule], *, method_name: str, flow_name: str, state: dict[str, Any]
) -> list[RuleVerdict]:
    """Why each rule did or did not take a sample request, in the order routing tries them."""
    verdicts: list[RuleVerdict] = []
    decided = False
    for rule in rules:
        if not rule.enabled:
            verdicts.append(RuleVerdict(rule, None, "switched off"))
            continue
        if decided:
            verdicts.append(RuleVerdict(rule, None, "not tried: an earlier rule matched"))
            continue
        try:
            matches, problems = rule_verdict(rule, method_name, flow_name, state)
        except ConditionError as exc:
            verdicts.append(RuleVerdict(rule, False, f"condition error: {exc}"))
            continue
        if matches is None:
            decided = True
            note = "; ".join(problems) + " — fails closed: the request goes to the deployment creator (condition_error)"
            verdicts.append(RuleVerdict(rule, None, note, decides=True))
            continue
        if not matches:
            verdicts.append(RuleVerdict(rule, False, "no match"))
            continue
        decided = True
        note = "matches"
        if rule.approvers:
            policy = rule.policy or "any"
            quorum = f" ({rule.required} must agree)" if policy == "quorum" else ""
            note = f"matches; approvers {', '.join(map(str, rule.approvers))}, policy {policy}{quorum}"
        elif rule.assign_from_input:
            value = resolve_path(state, rule.assign_from_input, None)
            email = clean_email(value)
            note = (
                f"matches; {rule.assign_from_input} = {email}"
                if email
                else f"matches; {rule.assign_from_input} is {value!r}, not an email"
            )
        verdicts.append(RuleVerdict(rule, True, note, decides=True))
    return verdicts
