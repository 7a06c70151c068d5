"""Server-side flows (SPEC §8) through the API, email replies and the dashboard answer path."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from flows.engine import runs
from flows.models import DeploymentFlow, FlowRun, FlowStep
from hitl import services
from hitl.models import HITLRequest
from hitl.services import add_routing_rule
from tests.support import esp_payloads as esp
from tests.support import sample_flows  # noqa: F401  (registers the test flows)
from tests.support.base import World

pytestmark = pytest.mark.django_db

ALL_FLOWS = [
    "content_approval",
    "article_picker",
    "expense_approval",
    "test_pipeline",
    "test_crew",
    "test_typed_state",
    "test_failing",
]


@pytest.fixture
def flows_world(world: World) -> World:
    DeploymentFlow.objects.bulk_create([DeploymentFlow(deployment=world.deployment, flow_name=n) for n in ALL_FLOWS])
    return world


def kickoff(world: World, flow: str, inputs: dict | None = None, who: str = "key", **extra: object):
    return world.client_for(who).post(
        f"/api/v1/deployments/{world.deployment.pk}/kickoff/",
        {"flow": flow, "inputs": inputs or {}, **extra},
        format="json",
    )


def execution(world: World, run_id: str, who: str = "key") -> dict:
    response = world.client_for(who).get(f"/api/v1/executions/{run_id}/")
    assert response.status_code == 200, response.content
    return response.json()


class TestSeedContentApprovalFlow:
    def test_email_revision_loop_then_dashboard_approval_publishes(self, flows_world: World, capsys) -> None:
        world = flows_world
        response = kickoff(world, "content_approval")
        assert response.status_code == 202, response.content
        run_id = response.json()["execution_id"]
        status = execution(world, run_id)
        assert status["status"] == "waiting_for_human"
        assert [s["method_name"] for s in status["steps"]] == ["generate_content", "review_content"]
        pending = status["pending_requests"][0]
        assert pending["method_name"] == "review_content" and pending["assigned_to_email"] == "creator@example.com"
        request = HITLRequest.objects.get(pk=pending["id"])
        assert request.content == "Marketing copy for review..." and request.flow_id == run_id
        assert request.emit_options == ["approved", "rejected", "needs_revision"]

        # The reviewer answers the notification email: revise.
        notification = next(m for m in mail.outbox if m.to == ["creator@example.com"])
        mail.outbox.clear()
        esp.reply(
            Client(),
            "postmark",
            sender="creator@example.com",
            to=notification.reply_to[0],
            body="needs_revision: tighten the intro",
        )
        status = execution(world, run_id)
        assert status["status"] == "waiting_for_human"
        assert [s["method_name"] for s in status["steps"]] == ["generate_content", "review_content", "review_content"]
        assert status["steps"][1]["result"]["outcome"] == "needs_revision"
        second = HITLRequest.objects.get(pk=status["pending_requests"][0]["id"])
        assert second.pk != request.pk

        # Then approves on the dashboard.
        services.respond_to_request(
            second.pk,
            services.Answer(outcome="approved", feedback="Ship it"),
            responder="creator@example.com",
            source="dashboard",
        )
        status = execution(world, run_id)
        assert status["status"] == "completed"
        publish = status["steps"][-1]
        assert publish["method_name"] == "publish_content" and publish["input"]["feedback"] == "Ship it"
        assert publish["input"]["source"] == "dashboard"
        assert "Publishing approved content. Reviewer notes: Ship it" in capsys.readouterr().out
        assert not any(s["method_name"] == "archive_content" for s in status["steps"])


class TestApprovalMode:
    def test_a_rejection_completes_the_run_and_skips_the_rest(self, flows_world: World) -> None:
        add_routing_rule(
            flows_world.deployment,
            name="big",
            method_pattern="approve_*",
            conditions="amount >= 10000",
            assign_to_email="finance@example.com",
            actor="t",
        )
        run_id = kickoff(flows_world, "expense_approval", {"amount": 25000, "description": "laptops"}).json()[
            "execution_id"
        ]
        status = execution(flows_world, run_id)
        request = HITLRequest.objects.get(pk=status["pending_requests"][0]["id"])
        assert request.assigned_to_email == "finance@example.com" and request.mode == "approval"
        services.respond_to_request(
            request.pk,
            services.Answer(outcome="reject", feedback="over budget"),
            responder="finance@example.com",
            source="api",
        )
        run = FlowRun.objects.get(pk=run_id)
        assert (run.status, run.outcome) == ("completed", "rejected")
        assert not run.steps.filter(method_name="pay").exists()
        assert "paid" not in run.state

    def test_an_approval_continues(self, flows_world: World) -> None:
        run_id = kickoff(flows_world, "expense_approval", {"amount": 50}).json()["execution_id"]
        request = HITLRequest.objects.get(flow_id=run_id)
        assert request.assigned_to_email == "creator@example.com"
        services.respond_to_request(
            request.pk, services.Answer(feedback="yes"), responder="creator@example.com", source="email"
        )
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed" and run.state["paid"] is True
        assert run.steps.get(method_name="pay").output == {"paid": 50, "approved_by": "creator@example.com"}


class TestChoices:
    def test_the_article_picker_offers_the_rss_items(self, flows_world: World) -> None:
        run_id = kickoff(flows_world, "article_picker").json()["execution_id"]
        request = HITLRequest.objects.get(flow_id=run_id)
        assert [o["label"] for o in request.options][0] == "Durable workflows without a workflow engine"
        assert request.options[1]["value"] == "https://example.com/email"
        services.respond_to_request(
            request.pk, services.Answer(choice_id="option_2"), responder="creator@example.com", source="dashboard"
        )
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed" and run.state["picked"] == "https://example.com/email"


class TestRuntimeSemantics:
    def test_and_router_and_or_without_humans_run_synchronously(self, flows_world: World) -> None:
        response = kickoff(flows_world, "test_pipeline", {"threshold": 9}, sync=True)
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "completed"
        assert response.json()["state"]["route"] == "big"
        run = FlowRun.objects.get(pk=response.json()["execution_id"])
        assert [s.method_name for s in run.steps.order_by("seq")] == [
            "fetch",
            "configure",
            "combine",
            "decide",
            "handle_big",
        ]
        small = kickoff(flows_world, "test_pipeline", {"threshold": 1}, sync=True).json()
        assert small["state"]["route"] == "small"

    def test_sync_with_a_human_step_is_a_validation_error(self, flows_world: World) -> None:
        response = kickoff(flows_world, "content_approval", sync=True)
        assert response.status_code == 400 and response.json()["code"] == "sync_not_supported"
        assert FlowRun.objects.count() == 0

    def test_kickoff_errors(self, flows_world: World) -> None:
        response = flows_world.client_for("key").post(
            f"/api/v1/deployments/{flows_world.deployment.pk}/kickoff/", {"inputs": {}}, format="json"
        )
        assert response.json()["code"] == "flow_required"
        assert kickoff(flows_world, "nope").json()["code"] == "unknown_flow"

    def test_a_failing_step_fails_the_run_with_the_error(self, flows_world: World) -> None:
        run_id = kickoff(flows_world, "test_failing").json()["execution_id"]
        status = execution(flows_world, run_id)
        assert status["status"] == "failed" and "the model timed out" in status["error"]
        assert status["steps"][0]["status"] == "failed"

    def test_a_typed_state_and_assignment_from_state(self, flows_world: World) -> None:
        response = kickoff(flows_world, "test_typed_state", {"title": "Printer on fire", "priority": 2})
        assert response.status_code == 202
        run = FlowRun.objects.get(pk=response.json()["execution_id"])
        assert run.state["priority"] == 3
        request = HITLRequest.objects.get(flow_id=str(run.pk))
        assert request.timeout_seconds == 3600 and request.due_at is not None
        assert request.assigned_to_email == "creator@example.com"  # the state has no owner_email field
        services.respond_to_request(
            request.pk, services.Answer(outcome="approved"), responder="x@example.com", source="api"
        )
        run.refresh_from_db()
        assert run.state["decision"] == "approved" and run.status == "completed"
        bad = kickoff(flows_world, "test_typed_state", {"priority": "high"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid"

    def test_a_step_delivered_twice_runs_once(self, flows_world: World, settings) -> None:
        run = FlowRun.objects.create(
            deployment=flows_world.deployment,
            flow_name="test_pipeline",
            state={},
            queue=[{"method": "fetch", "payload": None, "trigger": "start"}],
        )
        runs.run_step(str(run.pk), 0, chain=False)
        runs.run_step(str(run.pk), 0, chain=False)
        assert FlowStep.objects.filter(run=run).count() == 1
        assert FlowRun.objects.get(pk=run.pk).seq == 1

    def test_a_cancelled_review_fails_the_run(self, flows_world: World) -> None:
        run_id = kickoff(flows_world, "content_approval").json()["execution_id"]
        request = HITLRequest.objects.get(flow_id=run_id)
        services.cancel_request(request.pk, actor="ops", source="api")
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "failed" and "cancelled" in run.error


class TestCrewStyleResume:
    def test_reject_reruns_the_task_with_feedback_then_approve_continues(self, flows_world: World) -> None:
        world = flows_world
        run_id = kickoff(world, "test_crew").json()["execution_id"]
        status = execution(world, run_id)
        assert status["status"] == "pending_human_input" and status["pending_task"] == "research_task"

        def resume(**body):
            return world.client_for("key").post(
                f"/api/v1/deployments/{world.deployment.pk}/resume/",
                {"execution_id": run_id, "task_id": "research_task", **body},
                format="json",
            )  # noqa: E731

        response = resume(human_feedback="Add more details on pricing.", is_approve=False)
        assert response.status_code == 200, response.content
        status = execution(world, run_id)
        assert status["status"] == "pending_human_input"
        assert status["state"]["drafts"] == ["none", "Add more details on pricing."]
        assert resume(human_feedback="wrong task", is_approve=True, task_id="other").status_code == 400
        response = resume(human_feedback="Great work!", is_approve=True)
        assert response.json()["status"] == "completed"
        run = FlowRun.objects.get(pk=run_id)
        assert run.state["final"] == "report (feedback so far: Add more details on pricing.)"
        again = resume(human_feedback="late", is_approve=True)
        assert again.status_code == 409 and again.json()["code"] == "not_pending"


class TestExecutionPermissions:
    def test_allowed_other_deployment_404_read_only_403(self, flows_world: World) -> None:
        world = flows_world
        run_id = kickoff(world, "content_approval").json()["execution_id"]
        assert world.client_for("manager").get(f"/api/v1/executions/{run_id}/").status_code == 200
        assert world.client_for("read_key").get(f"/api/v1/executions/{run_id}/").status_code == 200
        assert world.client_for("other_key").get(f"/api/v1/executions/{run_id}/").status_code == 404
        assert world.client_for("stranger").get(f"/api/v1/executions/{run_id}/").status_code == 404
        assert kickoff(world, "content_approval", who="read_key").status_code == 403
        assert kickoff(world, "content_approval", who="other_key").status_code == 404
        assert kickoff(world, "content_approval", who="responder").status_code == 403


class TestTimeouts:
    """`on_timeout` on a flow's human step, through the sweeper's expire path."""

    def _run_with(self, world: World, **step: object) -> tuple[str, HITLRequest]:
        from flows.registry import register
        from flows.runtime import Flow, HumanFeedbackResult, human_feedback, listen, start

        name = f"timeout_{step['on_timeout']}"

        @register(name)
        class TimeoutFlow(Flow):
            @start()
            def draft(self):
                return "draft"

            @human_feedback(message="Approve?", emit=["approved", "rejected"], timeout=60, **step)
            @listen("draft")
            def review(self, draft):
                return draft

            @listen("approved")
            def publish(self, result: HumanFeedbackResult):
                self.state["published_by"] = result.source

            @listen("review")
            def carry_on(self, result: HumanFeedbackResult):
                self.state["continued"] = {"outcome": result.outcome, "status": result.status}

        DeploymentFlow.objects.get_or_create(deployment=world.deployment, flow_name=name)
        run_id = kickoff(world, name).json()["execution_id"]
        request = HITLRequest.objects.get(flow_id=run_id)
        services.expire_request(request.pk, now=request.due_at)
        return run_id, request

    def test_default_answers_with_the_default_outcome(self, flows_world: World) -> None:
        run_id, request = self._run_with(flows_world, on_timeout="default", default_outcome="approved")
        run = FlowRun.objects.get(pk=run_id)
        assert HITLRequest.objects.get(pk=request.pk).status == "auto_responded"
        assert run.status == "completed" and run.state["published_by"] == "auto"

    def test_fail_fails_the_run(self, flows_world: World) -> None:
        run_id, _ = self._run_with(flows_world, on_timeout="fail")
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "failed" and "in time" in run.error

    def test_continue_goes_on_with_the_empty_result(self, flows_world: World) -> None:
        run_id, _ = self._run_with(flows_world, on_timeout="continue")
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed"
        assert run.state["continued"] == {"outcome": None, "status": "timed_out"}


class TestCrewWebhooks:
    def test_task_step_and_crew_webhooks_are_signed_with_the_runs_secret(self, flows_world: World, receiver) -> None:
        from tests.support.receiver import seed_verify, standard_verify

        world = flows_world
        response = kickoff(
            world,
            "test_crew",
            taskWebhookUrl=receiver.url + "/task",
            stepWebhookUrl=receiver.url + "/step",
            crewWebhookUrl=receiver.url + "/crew",
        )
        secret = response.json()["webhook_secret"]
        assert secret.startswith("whsec_")
        run_id = response.json()["execution_id"]
        task_hook = receiver.wait_for(1)[0]
        assert task_hook.path.endswith("/task")
        assert task_hook.payload == {
            "execution_id": run_id,
            "task_id": "research_task",
            "output": "report (feedback so far: none)",
            "status": "pending_human_input",
        }
        resume_body = {
            "execution_id": run_id,
            "task_id": "research_task",
            "human_feedback": "ok",
            "is_approve": True,
            "stepWebhookUrl": receiver.url + "/step",
            "crewWebhookUrl": receiver.url + "/crew",
        }
        assert (
            world.client_for("key")
            .post(f"/api/v1/deployments/{world.deployment.pk}/resume/", resume_body, format="json")
            .status_code
            == 200
        )
        deliveries = receiver.wait_for(3)
        assert [d.path.rsplit("/", 1)[-1] for d in deliveries] == ["task", "step", "crew"]
        assert deliveries[1].payload["step"] == "write"
        assert deliveries[2].payload["status"] == "completed"
        for delivery in deliveries:
            signature = delivery.headers["x-signature"].removeprefix("sha256=")
            assert seed_verify(secret, delivery.headers["x-timestamp"], delivery.body, signature)
            assert standard_verify(secret, delivery.body, delivery.headers)

    def test_a_private_webhook_url_is_refused_at_kickoff(self, flows_world: World) -> None:
        response = kickoff(flows_world, "test_crew", taskWebhookUrl="https://10.0.0.1/hook")
        assert response.status_code == 400 and response.json()["code"] == "invalid_webhook_url"
        assert FlowRun.objects.count() == 0


class TestRecovery:
    def test_a_stalled_run_is_picked_up_again(self, flows_world: World) -> None:
        from datetime import timedelta

        from django.utils import timezone

        run = FlowRun.objects.create(
            deployment=flows_world.deployment,
            flow_name="test_pipeline",
            state={"threshold": 9},
            queue=[
                {"method": "fetch", "payload": None, "trigger": "start"},
                {"method": "configure", "payload": None, "trigger": "start"},
            ],
        )
        FlowRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
        assert runs.recover_stalled_runs() == 1
        run.refresh_from_db()
        assert run.status == "completed" and run.state["route"] == "big"
        assert runs.recover_stalled_runs() == 0

    def test_the_recovery_schedule_exists(self, db: None) -> None:
        from django_q.models import Schedule

        assert Schedule.objects.filter(
            name="flows-recover-stalled-runs", func="flows.tasks.recover_stalled_runs"
        ).exists()
