"""Several approvers under real races (SPEC §13): approvers in separate processes deciding at the same
instant, with the sweeper's timeout among them, on PostgreSQL. Exactly one resolution; every decision
recorded or cleanly refused; the audit chain intact."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import verify_chain
from hitl.models import Decision, HITLRequest, Resolution
from tests.support.base import build_world

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a real row-lock race needs PostgreSQL (runs in CI's second pass)"
)

APPROVERS = [f"approver{i}@example.com" for i in range(9)]


def _worker(kind: str, request_id: str, email: str, barrier: Any, results: Any) -> None:
    """One process: wait for the others, then decide (or run the timeout), report what happened."""
    from hitl import services
    from hitl.lib.errors import HitlError
    from hitl.services.resolve import expire_request

    connections.close_all()  # never share the parent's socket
    try:
        barrier.wait(timeout=30)
        if kind == "sweeper":
            resolution = expire_request(request_id)
            results.put((email, "timed_out" if resolution is not None else "nothing"))
            return
        if kind == "batch":  # the minute sweep's path: a chunk of due requests in one transaction
            from django.utils import timezone

            from hitl.services.sweep import expire_due

            done = expire_due([request_id], timezone.now())
            results.put(("sweeper", "timed_out" if done else "nothing"))
            return
        resolution = services.respond_to_request(
            request_id, services.Answer(outcome="approved"), responder=email, source="api"
        )
        results.put((email, "resolved" if resolution.status != "pending" else "decided"))
    except HitlError as exc:
        results.put((email, exc.code))
    except Exception as exc:  # anything else fails the test: reported, not swallowed
        results.put((email, f"error: {type(exc).__name__}: {exc}"))
    finally:
        connections.close_all()


def _race(request_id: str, workers: list[tuple[str, str]]) -> dict[str, str]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(workers))
    results = context.Queue()
    connections.close_all()
    processes = [
        context.Process(target=_worker, args=(kind, request_id, email, barrier, results)) for kind, email in workers
    ]
    for process in processes:
        process.start()
    outcome = dict(results.get(timeout=90) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return outcome


@postgres_only
@pytest.mark.django_db(transaction=True)
class TestApproversRace:
    @pytest.mark.parametrize("sweeper", ["sweeper", "batch"])
    def test_nine_approvers_and_the_sweeper_at_once_resolve_exactly_once(self, sweeper: str) -> None:
        world = build_world()
        created = world.create(approvers=APPROVERS, policy="quorum", required=5, mode="approval", emit_options=None)
        request_id = created["id"]
        HITLRequest.objects.filter(pk=request_id).update(due_at=timezone.now() - timedelta(seconds=1))
        outcome = _race(request_id, [("approver", e) for e in APPROVERS] + [(sweeper, "sweeper")])

        assert not [v for v in outcome.values() if v.startswith("error")], outcome
        assert Resolution.objects.filter(request_id=request_id).count() == 1
        resolution = Resolution.objects.get(request_id=request_id)
        approvers = {e: v for e, v in outcome.items() if e != "sweeper"}
        decided = {e for e, v in approvers.items() if v in ("decided", "resolved")}
        refused = {e for e, v in approvers.items() if v == "not_pending"}
        assert decided | refused == set(APPROVERS), outcome
        assert set(Decision.objects.filter(request_id=request_id).values_list("approver", flat=True)) == decided
        if outcome["sweeper"] == "timed_out":
            assert "resolved" not in outcome.values() and len(decided) < 5
            assert resolution.status in ("timed_out", "auto_responded")
        else:
            assert list(outcome.values()).count("resolved") == 1 and len(decided) == 5
            assert resolution.status == "responded"
            assert resolution.responder in decided
        assert len(resolution.result["decisions"]) == len(decided)
        refusals = AuditEvent.objects.filter(event_type="response.refused", target_id=request_id).count()
        assert refusals == len(refused) + (1 if outcome["sweeper"] == "not_pending" else 0)
        assert verify_chain()[1] is None

    def test_eight_approvers_of_all_at_once_resolve_once_with_every_decision(self) -> None:
        world = build_world()
        pool = APPROVERS[:8]
        created = world.create(approvers=pool, policy="all")
        outcome = _race(created["id"], [("approver", e) for e in pool])
        assert sorted(outcome.values()) == ["decided"] * 7 + ["resolved"], outcome
        resolution = Resolution.objects.get(request_id=created["id"])
        assert sorted(d["responder"] for d in resolution.result["decisions"]) == sorted(pool)
        assert Decision.objects.filter(request_id=created["id"]).count() == 8
        assert verify_chain()[1] is None
