"""`@human_feedback(approvers=…, policy=…, required=…)` (SPEC §13): the run waits for the quorum and
its listener receives every decision."""

from __future__ import annotations

import pytest

from flows.models import DeploymentFlow, FlowRun
from hitl import services
from hitl.models import HITLRequest
from tests.support import sample_flows  # noqa: F401  (registers the test flows)
from tests.support.base import World

pytestmark = pytest.mark.django_db


class TestPoolFlow:
    def test_two_of_three_sign_and_the_requester_is_not_among_them(self, world: World) -> None:
        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="test_two_signatures")
        response = world.client_for("key").post(
            f"/api/v1/deployments/{world.deployment.pk}/kickoff/",
            {"flow": "test_two_signatures", "inputs": {}},
            format="json",
        )
        run_id = response.json()["execution_id"]
        request = HITLRequest.objects.get(flow_id=run_id)
        assert (request.policy, request.required) == ("quorum", 2)
        assert sorted(request.approver_seats.values_list("email", flat=True)) == ["ann@example.com", "bob@example.com"]
        with pytest.raises(services.DecisionRefused):
            services.respond_to_request(
                request.pk, services.Answer(outcome="approved"), responder="cid@example.com", source="api"
            )
        for email in ("ann@example.com", "bob@example.com"):
            assert FlowRun.objects.get(pk=run_id).status == "waiting_for_human"
            services.respond_to_request(
                request.pk, services.Answer(outcome="approved"), responder=email, source="email"
            )
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed"
        assert run.state["signers"] == ["ann@example.com", "bob@example.com"]
