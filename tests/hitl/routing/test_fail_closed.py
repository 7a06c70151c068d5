"""Routing fails closed (issue 14): numeric strings compare as numbers; a condition that cannot be
evaluated never lets a weaker rule take the request — it goes to the deployment creator with step
`condition_error`, recorded on the request, in the audit log and in the routing tester."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEvent
from hitl.services import add_routing_rule
from tests.support.base import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules(world: World) -> World:
    add_routing_rule(
        world.deployment, actor="t", name="Big to CFO", method_pattern="approve_*", priority=1,
        conditions="amount >= 10000", assign_to_email="cfo@example.com",
    )  # fmt: skip
    add_routing_rule(
        world.deployment, actor="t", name="Rest to clerk", method_pattern="approve_*", priority=2,
        assign_to_email="clerk@example.com",
    )  # fmt: skip
    return world


class TestRoutingFailsClosed:
    def test_it_compares_a_numeric_string_as_a_number(self, rules: World) -> None:
        created = rules.create(method_name="approve_payment", state={"amount": "12000"})
        assert created["assigned_to_email"] == "cfo@example.com"
        small = rules.create(method_name="approve_payment", state={"amount": "12.5"})
        assert small["assigned_to_email"] == "clerk@example.com"

    @pytest.mark.parametrize("amount", [[12000], {"value": 12000}, "twelve thousand"], ids=["list", "object", "text"])
    def test_it_gives_an_unevaluable_condition_to_the_creator_recorded(self, rules: World, amount: object) -> None:
        created = rules.create(method_name="approve_payment", state={"amount": amount})
        assert created["assigned_to_email"] == "creator@example.com"  # never the weaker clerk rule
        assert created["assignment"]["step"] == "condition_error"
        assert created["assignment"]["rule_name"] == "Big to CFO"
        assert "amount >= 10000 could not be evaluated" in created["assignment"]["condition_errors"][0]
        event = AuditEvent.objects.get(target_id=created["id"], event_type="request.assigned")
        assert event.data["step"] == "condition_error" and event.data["condition_errors"]

    def test_it_shows_the_problem_in_the_routing_tester(self, rules: World) -> None:
        ops = Client()
        ops.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
        page = ops.post(
            "/admin/hitl/routingrule/test/",
            {"deployment": rules.deployment.pk, "method_name": "approve_payment", "state": '{"amount": [1]}'},
        )
        assert page.status_code == 200
        assert page.context["assignment"].step == "condition_error"
        assert "could not be evaluated" in page.content.decode() and "fails closed" in page.content.decode()
