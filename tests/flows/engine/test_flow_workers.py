"""Flows on a real `qcluster` worker: steps run as tasks, a paused run holds no worker, and a worker
killed while the run waits does not stop it from resuming, once, after a restart."""

from __future__ import annotations

import pytest

from flows.models import DeploymentFlow, FlowRun
from hitl import services
from hitl.models import HITLRequest
from tests.support.base import build_world
from tests.support.qcluster import QCluster, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class TestFlowOnARealWorker:
    def test_the_seed_flow_end_to_end_with_an_email_revision_and_a_dashboard_approval(self, qcluster: QCluster) -> None:
        from django.core import mail
        from django.test import Client

        from tests.support import esp_payloads as esp

        world = build_world()
        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="content_approval")
        qcluster.start()
        run_id = (
            world.client_for("key")
            .post(f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": "content_approval"}, format="json")
            .json()["execution_id"]
        )
        wait_until(lambda: HITLRequest.objects.filter(flow_id=run_id, status="pending").exists())
        first = HITLRequest.objects.get(flow_id=run_id, status="pending")
        # The notification went out from the worker (production settings: the dev mailbox backend is not
        # used there), so answer with the token a notification for this request carries.
        from hitl.lib.reply_tokens import reply_address

        mail.outbox.clear()
        reply_to = reply_address(first.pk, first.assigned_to_email)
        response = esp.reply(
            Client(), "postmark", sender=first.assigned_to_email, to=reply_to, body="needs_revision: tighten the intro"
        )
        assert response.status_code == 200
        wait_until(lambda: HITLRequest.objects.filter(flow_id=run_id, status="pending").exclude(pk=first.pk).exists())
        second = HITLRequest.objects.get(flow_id=run_id, status="pending")
        services.respond_to_request(
            second.pk,
            services.Answer(outcome="approved", feedback="Great, ship it"),
            responder="lead@example.com",
            source="dashboard",
        )
        wait_until(lambda: FlowRun.objects.get(pk=run_id).status == "completed")
        run = FlowRun.objects.get(pk=run_id)
        methods = list(run.steps.order_by("seq").values_list("method_name", flat=True))
        assert methods == ["generate_content", "review_content", "review_content", "publish_content"]
        assert run.steps.filter(method_name="review_content").first().result["outcome"] == "needs_revision"
        publish = run.steps.get(method_name="publish_content")
        assert (publish.input["feedback"], publish.input["source"]) == ("Great, ship it", "dashboard")

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
