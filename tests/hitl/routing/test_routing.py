"""Routing per SPEC §3: the seed's pattern table, dynamic assignment, conditions, creator fallback."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from audit.models import AuditEvent
from hitl.models import RoutingRule
from hitl.routing.assign import choose_assignee
from hitl.routing.conditions import ConditionError, parse_condition
from hitl.services import add_routing_rule
from tests.support.base import World

pytestmark = pytest.mark.django_db


def rule(**fields: object) -> RoutingRule:
    defaults: dict[str, object] = {
        "name": "r",
        "enabled": True,
        "method_pattern": "*",
        "flow_pattern": "",
        "conditions": "",
    }
    defaults.update(fields)
    return RoutingRule(**defaults)


def assignee(rules: list[RoutingRule], method: str, state: dict | None = None, flow: str = "") -> tuple[str, str]:
    chosen = choose_assignee(
        rules, creator_email="creator@example.com", method_name=method, flow_name=flow, state=state or {}
    )
    return chosen.email, chosen.step


class TestSeedPatternTable:
    @pytest.mark.parametrize(
        ("pattern", "method", "matches"),
        [
            ("approve_*", "approve_payment", True),
            ("approve_*", "approve_vendor", True),
            ("approve_*", "review_payment", False),
            ("review_?", "review_a", True),
            ("review_?", "review_1", True),
            ("review_?", "review_ab", False),
            ("review_?", "review_", False),
            ("validate_payment", "validate_payment", True),
            ("validate_payment", "validate_payments", False),
            ("validate_payment", "validate_paymen", False),
        ],
    )
    def test_it_matches_like_the_seed(self, pattern: str, method: str, matches: bool) -> None:
        email, step = assignee([rule(method_pattern=pattern, assign_to_email="team@example.com")], method)
        assert (email == "team@example.com") is matches
        assert step == ("rule_email" if matches else "creator")
        assert fnmatchcase(method, pattern) is matches


class TestAssignmentOrder:
    def test_dynamic_assignment_from_state_wins(self) -> None:
        rules = [
            rule(method_pattern="review_*", assign_from_input="sales_rep_email", assign_to_email="sales@example.com")
        ]
        assert assignee(rules, "review_deal", {"sales_rep_email": "Alice@Company.com"}) == (
            "alice@company.com",
            "rule_input",
        )

    def test_nested_paths_resolve(self) -> None:
        rules = [rule(assign_from_input="account.owner.email")]
        state = {"account": {"owner": {"email": "owner@example.com"}}}
        assert assignee(rules, "x", state) == ("owner@example.com", "rule_input")

    @pytest.mark.parametrize("bad", ["not-an-email", "", None, 42, {"email": "x@example.com"}])
    def test_an_invalid_state_email_falls_through_to_the_rule_email(self, bad: object) -> None:
        rules = [rule(assign_from_input="sales_rep_email", assign_to_email="sales@example.com")]
        assert assignee(rules, "review_x", {"sales_rep_email": bad}) == ("sales@example.com", "rule_email")

    def test_a_matching_rule_that_yields_nothing_falls_back_to_the_creator(self) -> None:
        rules = [rule(assign_from_input="missing"), rule(assign_to_email="second@example.com")]
        assert assignee(rules, "x") == ("creator@example.com", "creator")

    def test_no_rule_matches_means_the_creator(self) -> None:
        assert assignee([rule(method_pattern="approve_*", assign_to_email="f@example.com")], "other") == (
            "creator@example.com",
            "creator",
        )

    def test_disabled_rules_are_skipped_and_order_is_respected(self) -> None:
        rules = [
            rule(enabled=False, assign_to_email="off@example.com"),
            rule(assign_to_email="first@example.com"),
            rule(assign_to_email="later@example.com"),
        ]
        assert assignee(rules, "x")[0] == "first@example.com"

    def test_flow_pattern_narrows_a_rule(self) -> None:
        rules = [rule(flow_pattern="billing_*", assign_to_email="billing@example.com")]
        assert assignee(rules, "x", flow="billing_flow")[0] == "billing@example.com"
        assert assignee(rules, "x", flow="content_flow")[0] == "creator@example.com"


class TestConditions:
    @pytest.mark.parametrize(
        ("condition", "state", "holds"),
        [
            ("amount >= 10000", {"amount": 10000}, True),
            ("amount >= 10000", {"amount": 9999.5}, False),
            ("amount > 10", {"amount": "11"}, True),  # numeric strings compare as numbers (issue 14)
            ("amount < 5", {}, False),
            ("tier == gold", {"tier": "gold"}, True),
            ('tier != "gold"', {"tier": "silver"}, True),
            ('region in ["eu", "uk"]', {"region": "uk"}, True),
            ('region in ["eu", "uk"]', {"region": "us"}, False),
            ("order.total <= 5", {"order": {"total": 5}}, True),
            ("flag == true", {"flag": True}, True),
        ],
    )
    def test_it_evaluates(self, condition: str, state: dict, holds: bool) -> None:
        assert parse_condition(condition).holds(state) is holds

    @pytest.mark.parametrize("text", ["amount", "amount >>= 5", "amount in 5", 'x == ["unterminated'])
    def test_it_refuses_unreadable_conditions(self, text: str) -> None:
        with pytest.raises(ConditionError):
            parse_condition(text)

    def test_big_expenses_route_to_finance_by_amount(self) -> None:
        rules = [
            rule(method_pattern="approve_*", conditions="amount >= 10000", assign_to_email="cfo@example.com"),
            rule(method_pattern="approve_*", assign_to_email="finance@example.com"),
        ]
        assert assignee(rules, "approve_expense", {"amount": 25000})[0] == "cfo@example.com"
        assert assignee(rules, "approve_expense", {"amount": 250})[0] == "finance@example.com"


class TestThroughTheApi:
    def test_the_request_records_which_rule_decided_and_the_audit_says_so(self, world: World) -> None:
        add_routing_rule(
            world.deployment,
            name="Approvals to Finance",
            method_pattern="approve_*",
            assign_to_email="finance@example.com",
            actor="t",
        )
        add_routing_rule(
            world.deployment,
            name="Sales",
            method_pattern="review_*",
            assign_from_input="sales_rep_email",
            actor="t",
            priority=5,
        )
        created = world.create(method_name="approve_payment", state={"amount": 5})
        assert created["assigned_to_email"] == "finance@example.com"
        assert created["assignment"]["rule_name"] == "Approvals to Finance"
        event = AuditEvent.objects.get(event_type="request.assigned", target_id=created["id"])
        assert event.data["rule_name"] == "Approvals to Finance" and event.data["step"] == "rule_email"

        dynamic = world.create(method_name="review_deal", state={"sales_rep_email": "alice@company.com"})
        assert (dynamic["assigned_to_email"], dynamic["assignment"]["step"]) == ("alice@company.com", "rule_input")
        fallback = world.create(method_name="review_deal", state={"sales_rep_email": "nope"})
        assert (fallback["assigned_to_email"], fallback["assignment"]["step"]) == ("creator@example.com", "creator")

    def test_assign_to_overrides_routing(self, world: World) -> None:
        add_routing_rule(
            world.deployment, name="all", method_pattern="*", assign_to_email="team@example.com", actor="t"
        )
        created = world.create(assign_to="Boss@Example.com")
        assert (created["assigned_to_email"], created["assignment"]["step"]) == ("boss@example.com", "explicit")

    def test_a_rule_needs_somewhere_to_send(self, world: World) -> None:
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError):
            add_routing_rule(world.deployment, name="empty", method_pattern="*", actor="t")
        with pytest.raises(ValidationError):
            add_routing_rule(
                world.deployment,
                name="bad",
                method_pattern="*",
                assign_to_email="a@b.example",
                conditions="amount >>= 1",
                actor="t",
            )
