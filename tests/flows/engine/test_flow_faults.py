"""Fault injection on flow runs: a real `qcluster` worker is SIGKILLed while a step is executing.

What the engine promises (and these tests hold it to) is **at-least-once execution, exactly-once
recording**: a step whose worker died is run again from its start by the recovery schedule
(`flows-recover-stalled-runs`, after `HITL_FLOW_STALLED_AFTER` seconds without progress), so its body
may run more than once — a side effect outside the run (here, a line in a ledger file) happens once per
attempt — but the run's state, its step record, the review request of the next human step and the
steps after it are committed once, by the one attempt that wins the compare-and-set on the run's `seq`.
A step that calls another system should therefore pass an idempotency key (the run id and step name).

The worker runs `tests.flows.worker_settings` (production settings plus the test flows); SQLite uses the
ORM broker, PostgreSQL runs with Redis (the broker that drops a killed worker's task for good).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from audit.services import verify_chain
from flows.engine import runs
from flows.models import DeploymentFlow, FlowRun, FlowStep
from hitl import services
from hitl.models import HITLRequest, Resolution
from hitl.schedules import RECOVER_NAME
from tests.support import sample_flows  # noqa: F401  (registers the test flows in this process too)
from tests.support.base import World, build_world
from tests.support.qcluster import QCluster, tick_schedule, wait_until

FLOW = "test_killed_mid_step"
STALLED_AFTER = 2  # seconds; production keeps 300 (above the 90 s task timeout)


def ledger(folder: Path) -> list[str]:
    path = folder / "ledger"
    return path.read_text().splitlines() if path.exists() else []


def worker(qcluster: QCluster, workers: int) -> QCluster:
    """The worker, its schedules held back: recovery happens when the test ticks it, never on its own
    at start-up (a schedule already due fires then, and could take the worker the start probe needs)."""
    from django_q.models import Schedule

    Schedule.objects.update(next_run=timezone.now() + timedelta(hours=1))
    qcluster.extra_env.update(
        DJANGO_SETTINGS_MODULE="tests.support.worker_settings",
        HITL_FLOW_STALLED_AFTER=str(STALLED_AFTER),
        HITL_Q_WORKERS=str(workers),
    )
    return qcluster


def kick_off(world: World, folder: Path) -> str:
    DeploymentFlow.objects.create(deployment=world.deployment, flow_name=FLOW)
    response = world.client_for("key").post(
        f"/api/v1/deployments/{world.deployment.pk}/kickoff/",
        {"flow": FLOW, "inputs": {"dir": str(folder)}},
        format="json",
    )
    assert response.status_code == 202, response.content
    return str(response.json()["execution_id"])


def recover_once_stalled(run_id: str) -> Any:
    """Wait until the run counts as stalled, then make the recovery schedule tick (through the real
    scheduler and broker, on the worker)."""
    updated = FlowRun.objects.get(pk=run_id).updated_at
    while timezone.now() < updated + timedelta(seconds=STALLED_AFTER + 0.2):
        time.sleep(0.1)
    return tick_schedule(RECOVER_NAME)


def finish_and_check(world: World, run_id: str, qcluster: QCluster) -> FlowRun:
    """The human step after the interrupted one asks once; answering completes the run once."""
    wait_until(lambda: FlowRun.objects.get(pk=run_id).status == "waiting_for_human", cluster=qcluster)
    assert HITLRequest.objects.filter(flow_id=run_id).count() == 1
    request = HITLRequest.objects.get(flow_id=run_id)
    services.respond_to_request(
        request.pk, services.Answer(outcome="approved", feedback="Ship it"), responder="lead@example.com", source="api"
    )
    wait_until(lambda: FlowRun.objects.get(pk=run_id).status == "completed", cluster=qcluster)
    run = FlowRun.objects.get(pk=run_id)
    steps = list(FlowStep.objects.filter(run=run).order_by("seq").values_list("seq", "method_name", "status"))
    assert steps == [
        (0, "prepare", "completed"),
        (1, "work", "completed"),
        (2, "review", "completed"),
        (4, "finish", "completed"),  # seq 3 was the resume
    ]
    assert (run.state["prepared"], run.state["work_runs"], run.state["finished"]) == (1, 1, 1)
    assert HITLRequest.objects.filter(flow_id=run_id).count() == 1
    assert Resolution.objects.filter(request__flow_id=run_id).count() == 1
    assert run.steps.get(method_name="finish").output == "Ship it"
    assert verify_chain()[1] is None
    return run


@pytest.mark.django_db(transaction=True)
class TestWorkerKilledMidStep:
    def test_it_reruns_the_interrupted_step_once_after_a_restart(self, qcluster: QCluster, tmp_path: Path) -> None:
        world = build_world()
        worker(qcluster, workers=1).start()
        run_id = kick_off(world, tmp_path)
        wait_until(lambda: (tmp_path / "started-1").exists(), cluster=qcluster)

        qcluster.kill()  # SIGKILL mid-step: the step's body began, nothing of it was committed
        run = FlowRun.objects.get(pk=run_id)
        assert (run.status, run.seq) == ("running", 1)
        assert list(run.steps.values_list("method_name", flat=True)) == ["prepare"]
        (tmp_path / "release").touch()  # the next attempt runs straight through

        worker(qcluster, workers=1).start()
        assert recover_once_stalled(run_id) == 1
        run = finish_and_check(world, run_id, qcluster)
        # At-least-once: the body ran twice (two ledger lines), its outcome was recorded once — the
        # second attempt's, which saw both lines.
        assert ledger(tmp_path) == [run_id, run_id]
        assert run.state["ledger_lines_seen"] == 2
        assert run.steps.get(method_name="work").output == "worked (attempt 2)"
        # Nothing stalled is left to recover.
        assert tick_schedule(RECOVER_NAME) == 0

    def test_duplicate_attempts_running_at_once_commit_the_step_once(self, qcluster: QCluster, tmp_path: Path) -> None:
        # Two worker processes, and the recovery ticks twice while the re-run is still blocked (what a
        # threshold below the step's duration, or the ORM broker redelivering the killed task, does):
        # three attempts of one step in all, two of them concurrent.
        world = build_world()
        worker(qcluster, workers=2).start()
        run_id = kick_off(world, tmp_path)
        wait_until(lambda: len(ledger(tmp_path)) == 1, cluster=qcluster)
        qcluster.kill()

        worker(qcluster, workers=2).start()
        assert recover_once_stalled(run_id) == 1
        wait_until(lambda: len(ledger(tmp_path)) == 2, cluster=qcluster)
        assert recover_once_stalled(run_id) == 1  # still no progress committed: handed out again
        wait_until(lambda: len(ledger(tmp_path)) == 3, cluster=qcluster)
        (tmp_path / "release").touch()  # both attempts finish; one wins the compare-and-set on seq

        finish_and_check(world, run_id, qcluster)
        assert ledger(tmp_path) == [run_id] * 3  # the side effect: once per attempt


@pytest.mark.django_db
class TestRecoveryOfALostResume:
    def test_a_run_waiting_on_a_resolved_request_resumes_once(
        self, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
    ) -> None:
        (tmp_path / "release").touch()
        run_id = kick_off(world, tmp_path)  # tasks run inline here: the run reaches the review
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "waiting_for_human"
        request = HITLRequest.objects.get(flow_id=run_id)

        # The resume task is lost (a killed worker's task on Redis, or the broker down at commit).
        from flows.channel import FlowChannel

        with monkeypatch.context() as patch:
            patch.setattr(FlowChannel, "wants", lambda self, request, event: False)
            services.respond_to_request(
                request.pk, services.Answer(outcome="approved"), responder="lead@example.com", source="api"
            )
        assert FlowRun.objects.get(pk=run_id).status == "waiting_for_human"
        assert runs.recover_stalled_runs() == 0  # not stalled yet: a resume may still be on its way

        settings.HITL_FLOW_STALLED_AFTER = 60
        old = timezone.now() - timedelta(minutes=2)
        FlowRun.objects.filter(pk=run_id).update(updated_at=old)
        HITLRequest.objects.filter(pk=request.pk).update(resolved_at=old)
        assert runs.recover_stalled_runs() == 1
        run = FlowRun.objects.get(pk=run_id)
        assert run.status == "completed" and run.state["finished"] == 1
        assert list(run.steps.values_list("method_name", flat=True)) == ["prepare", "work", "review", "finish"]
        assert runs.recover_stalled_runs() == 0
