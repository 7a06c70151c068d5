"""Deadlines (SPEC §5): timeouts and auto-response, SLA, reminders and escalation, all by one sweeper."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AuditEvent
from audit.services import verify_chain
from hitl import services
from hitl.lib.errors import NotPending
from hitl.models import HITLRequest, Resolution, RoutingRule
from hitl.schedules import SWEEP_FUNC, SWEEP_NAME, ensure_schedules
from hitl.services import assign, deadlines, resolve
from hitl.services import sweep as sweeper
from hitl.services.resolve import timeout_resolution
from hitl.services.sweep import sweep
from tests.support.base import World


def later(request_id: str, seconds: float) -> Any:
    return HITLRequest.objects.get(pk=request_id).created_at + timedelta(seconds=seconds)


def events(request_id: str, event_type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_id=request_id, event_type=event_type))


@pytest.mark.django_db
class TestTimeouts:
    def test_it_auto_responds_with_the_default_outcome_once_due(self, world: World) -> None:
        created = world.create(timeout=60, default_outcome="rejected", metadata={"k": "v"})
        rid = created["id"]
        assert sweep(now=later(rid, 59)).expired == 0
        assert HITLRequest.objects.get(pk=rid).status == "pending"
        assert sweep(now=later(rid, 60)).expired == 1
        request = HITLRequest.objects.get(pk=rid)
        assert request.status == "auto_responded"
        resolution = Resolution.objects.get(pk=rid)
        assert (resolution.status, resolution.outcome, resolution.source, resolution.responder) == (
            "auto_responded",
            "rejected",
            "auto",
            "system",
        )
        assert resolution.result["outcome"] == "rejected" and resolution.result["source"] == "auto"
        assert resolution.result["metadata"] == {"k": "v"}
        assert len(events(rid, "request.auto_responded")) == 1
        # Sweeping again (or by several workers) changes nothing.
        assert sweep(now=later(rid, 3600)).expired == 0
        assert Resolution.objects.filter(pk=rid).count() == 1
        result = world.client_for("key").get(f"/api/v1/requests/{rid}/result/").json()
        assert result["status"] == "auto_responded" and result["source"] == "auto"

    @pytest.mark.parametrize("on_timeout", ["fail", "continue"])
    def test_fail_and_continue_time_out(self, world: World, on_timeout: str) -> None:
        rid = world.create(timeout=30, default_outcome="approved", on_timeout=on_timeout)["id"]
        sweep(now=later(rid, 31))
        resolution = Resolution.objects.get(pk=rid)
        assert resolution.status == "timed_out" and resolution.outcome is None and resolution.source == "auto"
        assert resolution.result["metadata"] == {"timed_out": True, "on_timeout": on_timeout}
        assert len(events(rid, "request.timed_out")) == 1

    def test_no_default_outcome_times_out(self, world: World) -> None:
        rid = world.create(mode="text", emit_options=None, timeout=30)["id"]
        sweep(now=later(rid, 30))
        assert HITLRequest.objects.get(pk=rid).status == "timed_out"

    def test_the_deployments_auto_response_applies(self, world: World) -> None:
        deployment = world.deployment
        deployment.auto_response_enabled = True
        deployment.auto_response_timeout_minutes = 10
        deployment.auto_response_default_outcome = "approved"
        deployment.save()
        rid = world.create()["id"]
        assert sweep(now=later(rid, 599)).expired == 0
        assert sweep(now=later(rid, 600)).expired == 1
        assert Resolution.objects.get(pk=rid).outcome == "approved"

    def test_an_answer_cancels_the_deadline(self, world: World) -> None:
        rid = world.create(timeout=30, default_outcome="approved")["id"]
        world.client_for("key").post(f"/api/v1/requests/{rid}/respond/", {"outcome": "rejected"}, format="json")
        assert sweep(now=later(rid, 31)).expired == 0
        assert Resolution.objects.get(pk=rid).outcome == "rejected"
        assert events(rid, "response.refused") == []

    def test_expire_request_is_never_early(self, world: World) -> None:
        rid = world.create(timeout=30, default_outcome="approved")["id"]
        assert services.expire_request(rid, now=later(rid, 29.9)) is None
        assert services.expire_request(rid) is None  # real time: 30 s have not passed
        assert HITLRequest.objects.get(pk=rid).status == "pending"

    def test_a_late_human_answer_gets_409(self, world: World) -> None:
        rid = world.create(timeout=30, default_outcome="approved")["id"]
        sweep(now=later(rid, 30))
        response = world.client_for("key").post(f"/api/v1/requests/{rid}/respond/", {"outcome": "no"}, format="json")
        assert response.status_code == 409 and response.json()["code"] == "not_pending"
        assert "auto-answered by system via auto" in response.json()["detail"]


@pytest.mark.django_db
class TestSla:
    def test_it_flags_overdue_once_and_records_answered_within_sla(self, world: World) -> None:
        world.deployment.sla_target_minutes = 5
        world.deployment.save()
        late = world.create()["id"]
        on_time = world.create()["id"]
        world.client_for("key").post(f"/api/v1/requests/{on_time}/respond/", {"outcome": "approved"}, format="json")
        assert sweep(now=later(late, 299)).overdue == 0
        assert sweep(now=later(late, 301)).overdue == 1
        assert sweep(now=later(late, 400)).overdue == 0
        assert HITLRequest.objects.get(pk=late).overdue is True
        assert HITLRequest.objects.get(pk=on_time).overdue is False
        assert len(events(late, "request.overdue")) == 1
        assert Resolution.objects.get(pk=on_time).answered_within_sla is True

    def test_no_sla_target_means_no_tracking(self, world: World) -> None:
        rid = world.create()["id"]
        assert HITLRequest.objects.get(pk=rid).sla_due_at is None
        assert sweep(now=later(rid, 10**6)).overdue == 0


@pytest.mark.django_db
class TestReminders:
    def test_it_reminds_the_assignee_once(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        announced: list[tuple[str, str]] = []
        for module in (deadlines, assign):  # remind_assignee announces; so does an escalation's reassignment
            monkeypatch.setattr(module, "announce", lambda request, event: announced.append((str(request.pk), event)))
        world.deployment.reminder_after_minutes = 30
        world.deployment.save()
        rid = world.create(assign_to="alice@example.com")["id"]
        request = HITLRequest.objects.get(pk=rid)
        assert request.reminder_due_at == request.created_at + timedelta(minutes=30)
        assert sweep(now=later(rid, 1799)).reminded == 0
        assert sweep(now=later(rid, 1800)).reminded == 1
        assert sweep(now=later(rid, 9999)).reminded == 0
        request.refresh_from_db()
        assert request.reminder_sent_at is not None and request.reminder_due_at is None
        assert announced.count((rid, "request_reminder")) == 1
        (event,) = [e for e in events(rid, "notification.sent") if e.data.get("action") == "reminder_requested"]
        assert event.data["to"] == "alice@example.com" and event.actor == "system"

    def test_a_rule_overrides_the_deployment_and_zero_switches_it_off(self, world: World) -> None:
        world.deployment.reminder_after_minutes = 30
        world.deployment.save()
        RoutingRule.objects.create(
            deployment=world.deployment,
            name="urgent",
            method_pattern="urgent_*",
            assign_to_email="ops@example.com",
            reminder_after_minutes=5,
        )
        RoutingRule.objects.create(
            deployment=world.deployment,
            name="quiet",
            method_pattern="quiet_*",
            assign_to_email="ops@example.com",
            reminder_after_minutes=0,
        )
        urgent = HITLRequest.objects.get(pk=world.create(method_name="urgent_fix")["id"])
        quiet = HITLRequest.objects.get(pk=world.create(method_name="quiet_fix")["id"])
        plain = HITLRequest.objects.get(pk=world.create(method_name="other")["id"])
        assert urgent.reminder_due_at == urgent.created_at + timedelta(minutes=5)
        assert quiet.reminder_due_at is None
        assert plain.reminder_due_at == plain.created_at + timedelta(minutes=30)

    def test_resolved_requests_are_not_reminded(self, world: World) -> None:
        world.deployment.reminder_after_minutes = 1
        world.deployment.save()
        rid = world.create()["id"]
        world.client_for("key").post(f"/api/v1/requests/{rid}/cancel/", {}, format="json")
        assert sweep(now=later(rid, 120)).reminded == 0


@pytest.mark.django_db
class TestEscalation:
    def setup_chain(self, world: World, chain: list[str], minutes: int = 10) -> None:
        world.deployment.escalation_after_minutes = minutes
        world.deployment.escalation_emails = chain
        world.deployment.save()

    def test_it_walks_the_chain_one_step_per_interval(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        announced: list[tuple[str, str]] = []
        for module in (deadlines, assign):  # remind_assignee announces; so does an escalation's reassignment
            monkeypatch.setattr(module, "announce", lambda request, event: announced.append((str(request.pk), event)))
        self.setup_chain(world, ["lead@example.com", "head@example.com"])
        rid = world.create(assign_to="alice@example.com")["id"]
        start = HITLRequest.objects.get(pk=rid).created_at
        assert HITLRequest.objects.get(pk=rid).escalation_due_at == start + timedelta(minutes=10)

        assert sweep(now=start + timedelta(minutes=9)).escalated == 0
        step1 = start + timedelta(minutes=10)
        assert sweep(now=step1).escalated == 1
        assert sweep(now=step1).escalated == 0  # each step once
        request = HITLRequest.objects.get(pk=rid)
        assert (request.assigned_to_email, request.escalation_level, request.assignment_step) == (
            "lead@example.com",
            1,
            "escalated",
        )
        assert request.escalation_due_at == step1 + timedelta(minutes=10)

        assert sweep(now=step1 + timedelta(minutes=10)).escalated == 1
        request.refresh_from_db()
        assert (request.assigned_to_email, request.escalation_level, request.escalation_due_at) == (
            "head@example.com",
            2,
            None,
        )
        assert sweep(now=step1 + timedelta(days=1)).escalated == 0

        moves = [(e.data["from"], e.data["to"], e.data["level"]) for e in events(rid, "request.reassigned")]
        assert moves == [("alice@example.com", "lead@example.com", 1), ("lead@example.com", "head@example.com", 2)]
        assert all(e.actor == "system" and e.data["reason"] == "escalation" for e in events(rid, "request.reassigned"))
        assert announced.count((rid, "request_reassigned")) == 2

    def test_it_skips_the_current_assignee_and_a_rule_chain_wins(self, world: World) -> None:
        self.setup_chain(world, ["deployment-chain@example.com"])
        RoutingRule.objects.create(
            deployment=world.deployment,
            name="payments",
            method_pattern="pay_*",
            assign_to_email="cfo@example.com",
            escalation_after_minutes=1,
            escalation_emails=["cfo@example.com", "ceo@example.com"],
        )
        rid = world.create(method_name="pay_invoice")["id"]
        request = HITLRequest.objects.get(pk=rid)
        assert request.assigned_to_email == "cfo@example.com"
        sweep(now=request.created_at + timedelta(minutes=1))
        request.refresh_from_db()
        assert request.assigned_to_email == "ceo@example.com" and request.escalation_level == 2
        assert request.escalation_due_at is None

    def test_no_chain_no_escalation(self, world: World) -> None:
        world.deployment.escalation_after_minutes = 10
        world.deployment.save()
        rid = world.create()["id"]
        assert HITLRequest.objects.get(pk=rid).escalation_due_at is None

    def test_a_manager_reassignment_still_works(self, world: World) -> None:
        rid = world.create()["id"]
        response = world.client_for("manager").post(
            f"/api/v1/requests/{rid}/reassign/", {"email": "bob@example.com"}, format="json"
        )
        assert response.status_code == 200, response.content
        request = HITLRequest.objects.get(pk=rid)
        assert request.assigned_to_email == "bob@example.com" and request.assignment_step == "reassigned"


@pytest.mark.django_db
class TestSchedule:
    def test_migrate_installs_the_minute_sweep(self) -> None:
        schedule = Schedule.objects.get(name=SWEEP_NAME)
        assert schedule.func == SWEEP_FUNC == "hitl.tasks.sweep"
        assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)

    def test_it_is_idempotent_and_repairs_edits(self) -> None:
        Schedule.objects.filter(name=SWEEP_NAME).update(minutes=60, repeats=0)
        ensure_schedules()
        ensure_schedules()
        schedule = Schedule.objects.get(name=SWEEP_NAME)
        assert (schedule.minutes, schedule.repeats) == (1, -1)
        assert Schedule.objects.filter(name=SWEEP_NAME).count() == 1

    def test_the_task_and_the_command_run_one_pass(self, world: World) -> None:
        from hitl.tasks import sweep as sweep_task

        rid = world.create(timeout=1, default_outcome="approved")["id"]
        HITLRequest.objects.filter(pk=rid).update(due_at=timezone.now() - timedelta(seconds=1))
        out = io.StringIO()
        call_command("hitl_sweep", stdout=out)
        assert (
            out.getvalue().strip().splitlines()[-1]
            == "expired=1 overdue=0 reminded=0 escalated=0 deliveries=0 notifications=0"
        )
        assert sweep_task() == "expired=0 overdue=0 reminded=0 escalated=0 deliveries=0 notifications=0"

    def test_one_failing_item_does_not_stop_the_sweep(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        first = world.create(timeout=1, default_outcome="approved")["id"]
        second = world.create(timeout=1, default_outcome="approved")["id"]
        real = timeout_resolution

        def flaky(request: HITLRequest) -> Any:
            if str(request.pk) == first:
                raise RuntimeError("boom")
            return real(request)

        # The chunk of both fails together, then each is tried alone through the service.
        monkeypatch.setattr(resolve, "timeout_resolution", flaky)
        assert sweep(now=later(second, 5)).expired == 1
        assert HITLRequest.objects.get(pk=second).status == "auto_responded"
        assert HITLRequest.objects.get(pk=first).status == "pending"
        assert not Resolution.objects.filter(pk=first).exists()

    def test_it_resolves_more_than_a_batch_in_one_pass_like_the_service(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sweeper, "BATCH", 4)
        monkeypatch.setattr(sweeper, "EXPIRE_CHUNK", 3)
        kinds = [
            {"default_outcome": "approved"},
            {"default_outcome": "approved", "on_timeout": "fail"},
            {"mode": "approval", "emit_options": None, "default_outcome": "rejected"},
            {"mode": "text", "emit_options": None},
        ]
        ids = [world.create(timeout=1, metadata={"n": i}, **kinds[i % 4])["id"] for i in range(10)]
        # The reference: the one-request service on an identical request.
        reference = world.create(timeout=1, metadata={"n": 0}, **kinds[0])["id"]
        services.expire_request(reference, now=later(reference, 5))
        assert sweep(now=later(ids[-1], 5)).expired == 10
        for i, rid in enumerate(ids):
            resolution = Resolution.objects.get(pk=rid)
            request = HITLRequest.objects.get(pk=rid)
            assert request.status == resolution.status == ("auto_responded" if i % 4 in (0, 2) else "timed_out")
            assert request.resolved_at == resolution.created_at
            assert len(events(rid, f"request.{resolution.status}")) == 1
        mine, theirs = Resolution.objects.get(pk=ids[0]), Resolution.objects.get(pk=reference)
        assert {**mine.result, "id": None, "responded_at": None} == {**theirs.result, "id": None, "responded_at": None}
        assert (mine.status, mine.outcome, mine.source, mine.responder) == (
            theirs.status,
            theirs.outcome,
            theirs.source,
            theirs.responder,
        )
        assert verify_chain()[1] is None
        assert sweep(now=later(ids[-1], 3600)).expired == 0


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a real row-lock race needs PostgreSQL (runs in CI's second pass)"
)


def race(rid: str, due: Any, human_delay: float) -> dict[str, Any]:
    """A human answer (through the service every channel uses) and a sweep, released together."""
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def human() -> None:
        try:
            barrier.wait(timeout=10)
            time.sleep(human_delay)  # vary who gets there first; the two often still overlap
            services.respond_to_request(
                rid, services.Answer(outcome="rejected"), responder="alice@example.com", source="api"
            )
            results["human"] = "answered"
        except NotPending:
            results["human"] = "409"
        finally:
            connections.close_all()

    def sweeper() -> None:
        try:
            barrier.wait(timeout=10)
            results["sweep"] = sweep(now=due).expired
        finally:
            connections.close_all()

    threads = [threading.Thread(target=human), threading.Thread(target=sweeper)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@postgres_only
@pytest.mark.django_db(transaction=True)
class TestSweepRace:
    def test_a_human_answer_and_the_sweep_at_the_same_instant_resolve_once(self, world: World) -> None:
        outcomes: list[str] = []
        for round_ in range(8):
            rid = world.create(timeout=1, default_outcome="approved")["id"]
            results = race(rid, later(rid, 1), human_delay=0.0015 * (round_ % 4))
            assert Resolution.objects.filter(pk=rid).count() == 1
            resolution = Resolution.objects.get(pk=rid)
            if resolution.source == "auto":
                assert results == {"human": "409", "sweep": 1}, results
            else:
                assert results == {"human": "answered", "sweep": 0}, results
            assert HITLRequest.objects.get(pk=rid).status == resolution.status
            outcomes.append(resolution.status)
        assert verify_chain()[1] is None
        assert set(outcomes) <= {"responded", "auto_responded"}
