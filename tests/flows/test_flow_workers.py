"""Flows on a real `qcluster` worker: steps run as tasks, a paused run holds no worker, and a worker
killed while the run waits does not stop it from resuming, once, after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from flows.models import DeploymentFlow, FlowRun
from hitl import services
from hitl.models import HITLRequest
from tests.base import build_world
from tests.qcluster import QCluster

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


class TestFlowOnARealWorker:
    def test_a_paused_run_survives_a_killed_worker_and_resumes_once(self, qcluster: QCluster) -> None:
        world = build_world()
        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="content_approval")
        qcluster.start()
        response = world.client_for("key").post(
            f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": "content_approval"}, format="json"
        )
        run_id = response.json()["execution_id"]
        wait_until(lambda: FlowRun.objects.get(pk=run_id).status == "waiting_for_human")
        request = HITLRequest.objects.get(flow_id=run_id)

        qcluster.kill()  # nobody is working on the run while it waits
        services.respond_to_request(
            request.pk,
            services.Answer(outcome="approved", feedback="Ship it"),
            responder="lead@example.com",
            source="dashboard",
        )
        assert FlowRun.objects.get(pk=run_id).status == "waiting_for_human"  # the resume is queued, not lost

        qcluster.start()
        wait_until(lambda: FlowRun.objects.get(pk=run_id).status == "completed")
        run = FlowRun.objects.get(pk=run_id)
        methods = list(run.steps.order_by("seq").values_list("method_name", flat=True))
        assert methods == ["generate_content", "review_content", "publish_content"]
        assert run.steps.get(method_name="publish_content").input["feedback"] == "Ship it"
