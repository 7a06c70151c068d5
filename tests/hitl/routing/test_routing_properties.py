"""Property tests: routing patterns agree with shell-style matching."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl.models import RoutingRule
from hitl.routing.assign import choose_assignee

names = st.text(alphabet="abcdefgh_0123", min_size=0, max_size=12)
patterns = st.text(alphabet="abcdefgh_0123*?", min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(pattern=patterns, method=names)
def test_a_rule_matches_exactly_when_fnmatch_does(pattern: str, method: str) -> None:
    rule = RoutingRule(
        name="r",
        enabled=True,
        method_pattern=pattern,
        flow_pattern="",
        conditions="",
        assign_to_email="rule@example.com",
    )
    chosen = choose_assignee([rule], creator_email="creator@example.com", method_name=method, state={})
    assert (chosen.email == "rule@example.com") is fnmatchcase(method, pattern)
