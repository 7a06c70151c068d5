"""Kickoff webhooks (flows/webhooks.py): a human step sends its step webhook like any step, and a
delivery carries its own URL, so a resume that replaces the run's URLs cannot lose it."""

from __future__ import annotations

from typing import Any

import pytest

from flows.models import DeploymentFlow, FlowRun
from tests.support import sample_flows  # noqa: F401  (registers the test flows)
from tests.support.base import World, build_world
from tests.support.queue_drain import run_queued


def kickoff(world: World, flow: str, **extra: object) -> Any:
    response = world.client_for("key").post(
        f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": flow, "inputs": {}, **extra}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()


@pytest.mark.django_db
class TestHumanStepWebhook:
    def test_a_human_step_sends_its_step_webhook_with_the_answer(self, world: World, receiver) -> None:
        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="content_approval")
        run = kickoff(world, "content_approval", stepWebhookUrl=receiver.url + "/step")
        assert [d.payload["step"] for d in receiver.wait_for(1)] == ["generate_content"]
        pending = world.client_for("key").get(f"/api/v1/executions/{run['execution_id']}/").json()
        request_id = pending["pending_requests"][0]["id"]
        answered = world.client_for("key").post(
            f"/api/v1/requests/{request_id}/respond/", {"outcome": "approved", "feedback": "Ship it"}, format="json"
        )
        assert answered.status_code == 200
        deliveries = receiver.wait_for(3)
        assert [d.payload["step"] for d in deliveries] == ["generate_content", "review_content", "publish_content"]
        review = deliveries[1].payload
        assert (review["execution_id"], review["status"], review["output"]) == (
            run["execution_id"],
            "completed",
            "Marketing copy for review...",
        )
        assert (review["result"]["outcome"], review["result"]["feedback"]) == ("approved", "Ship it")


class TestTaskWebhookBeforeResume:
    def test_a_task_webhook_is_delivered_though_resume_came_first(self, qcluster, receiver) -> None:
        from django.utils.module_loading import import_string

        world = build_world()
        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="test_crew")
        run = kickoff(world, "test_crew", taskWebhookUrl=receiver.url + "/task")
        [(func, args)] = run_queued(hold="flows.tasks.deliver_run_webhook")
        assert FlowRun.objects.get(pk=run["execution_id"]).status == "pending_human_input"
        # The resume arrives (without the task URL, as CrewAI clients may) before the worker delivered.
        resumed = world.client_for("key").post(
            f"/api/v1/deployments/{world.deployment.pk}/resume/",
            {
                "execution_id": run["execution_id"],
                "task_id": "research_task",
                "human_feedback": "ok",
                "is_approve": True,
            },
            format="json",
        )
        assert resumed.status_code == 200, resumed.content
        import_string(func)(*args)
        [delivery] = receiver.wait_for(1)
        assert delivery.path.endswith("/task") and delivery.payload["task_id"] == "research_task"
