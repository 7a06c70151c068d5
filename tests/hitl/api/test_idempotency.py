"""`Idempotency-Key` on the POSTs that change something (SPEC §15): one request however often it is sent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from flows.models import DeploymentFlow, FlowRun
from hitl.channels import webhook_outbox
from hitl.models import HITLRequest, IdempotencyKey, WebhookDelivery
from hitl.services.sweep import sweep
from tests.support.base import World, build_world
from tests.support.receiver import Receiver

BODY = {"message": "Publish?", "emit_options": ["approved", "rejected"]}


def post(world: World, path: str, body: dict[str, Any], key: str | None, who: str = "key") -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return world.client_for(who).post(path, body, format="json", **headers)


class TestReplay:
    def test_it_replays_the_first_create_and_makes_one_request_and_one_email(self, world: World) -> None:
        first = post(world, "/api/v1/requests/", BODY, "create-1")
        again = post(world, "/api/v1/requests/", BODY, "create-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        assert not first.has_header("Idempotent-Replayed")
        assert HITLRequest.objects.count() == 1
        assert len(mail.outbox) == 1

    def test_it_runs_without_a_key_as_before(self, world: World) -> None:
        post(world, "/api/v1/requests/", BODY, None)
        post(world, "/api/v1/requests/", BODY, None)
        assert HITLRequest.objects.count() == 2

    def test_a_different_body_with_the_same_key_is_422(self, world: World) -> None:
        post(world, "/api/v1/requests/", BODY, "create-2")
        response = post(world, "/api/v1/requests/", {**BODY, "message": "Something else"}, "create-2")
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert HITLRequest.objects.count() == 1

    def test_a_call_still_in_progress_is_409(self, world: World) -> None:
        from hitl.idempotency import fingerprint

        key_id = world.deployment.api_keys.get(name="full").pk
        IdempotencyKey.objects.create(
            principal=f"key:{key_id}", key="busy", fingerprint=fingerprint("POST", "/api/v1/requests/", BODY)
        )
        response = post(world, "/api/v1/requests/", BODY, "busy")
        assert response.status_code == 409
        assert response.json()["code"] == "idempotency_in_progress"
        assert HITLRequest.objects.count() == 0

    def test_a_key_is_scoped_per_api_key_so_another_deployment_creates_its_own(self, world: World) -> None:
        mine = post(world, "/api/v1/requests/", BODY, "shared-key")
        theirs = post(world, "/api/v1/requests/", BODY, "shared-key", who="other_key")
        assert theirs.status_code == 201
        assert not theirs.has_header("Idempotent-Replayed")
        assert theirs.json()["id"] != mine.json()["id"]
        assert set(HITLRequest.objects.values_list("deployment_id", flat=True)) == {
            world.deployment.pk,
            world.other.pk,
        }

    def test_a_read_only_key_cannot_replay_a_full_keys_call(self, world: World) -> None:
        post(world, "/api/v1/requests/", BODY, "full-key-call")
        response = post(world, "/api/v1/requests/", BODY, "full-key-call", who="read_key")
        assert response.status_code == 403
        assert not response.has_header("Idempotent-Replayed")
        assert "id" not in response.json()

    def test_a_session_user_has_keys_of_its_own(self, world: World) -> None:
        body = {**BODY, "deployment": world.deployment.pk}
        first = post(world, "/api/v1/requests/", body, "session-1", who="manager")
        again = post(world, "/api/v1/requests/", body, "session-1", who="manager")
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert HITLRequest.objects.count() == 1

    def test_a_refused_call_releases_its_key(self, world: World) -> None:
        bad = post(world, "/api/v1/requests/", {"emit_options": ["a"]}, "fix-and-retry")
        assert bad.status_code == 400
        good = post(world, "/api/v1/requests/", BODY, "fix-and-retry")
        assert good.status_code == 201

    def test_a_refused_answer_with_a_key_is_still_audited(self, world: World) -> None:
        from audit.models import AuditEvent

        created = world.create()["id"]
        assert post(world, f"/api/v1/requests/{created}/cancel/", {}, None).status_code == 200
        refused = post(world, f"/api/v1/requests/{created}/respond/", {"outcome": "approved"}, "late-1")
        assert refused.status_code == 409 and refused.json()["code"] == "not_pending"
        assert AuditEvent.objects.filter(event_type="response.refused", target_id=created).count() == 1
        assert not IdempotencyKey.objects.filter(key="late-1").exists()  # released: nothing happened

    def test_a_bad_key_is_a_clear_400(self, world: World) -> None:
        response = post(world, "/api/v1/requests/", BODY, "x" * 256)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_idempotency_key"
        assert HITLRequest.objects.count() == 0

    def test_respond_and_cancel_replay_instead_of_409_not_pending(self, world: World) -> None:
        answered = world.create()["id"]
        path = f"/api/v1/requests/{answered}/respond/"
        first = post(world, path, {"outcome": "approved"}, "respond-1")
        again = post(world, path, {"outcome": "approved"}, "respond-1")
        assert first.status_code == again.status_code == 200
        assert again["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        cancelled = world.create()["id"]
        path = f"/api/v1/requests/{cancelled}/cancel/"
        first = post(world, path, {"reason": "stale"}, "cancel-1")
        again = post(world, path, {"reason": "stale"}, "cancel-1")
        assert again.status_code == 200
        assert again["Idempotent-Replayed"] == "true"
        assert again.json()["status"] == "cancelled"

    def test_kickoff_is_replayed_with_one_run(self, world: World) -> None:
        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="content_approval")
        path = f"/api/v1/deployments/{world.deployment.pk}/kickoff/"
        body = {"flow": "content_approval", "inputs": {"topic": "MCP"}}
        first = post(world, path, body, "kick-1")
        again = post(world, path, body, "kick-1")
        assert first.status_code == again.status_code == 202
        assert again.json()["execution_id"] == first.json()["execution_id"]
        assert again["Idempotent-Replayed"] == "true"
        assert FlowRun.objects.count() == 1
        # The first response rests encrypted (a kickoff's carries the run's webhook secret).
        stored = IdempotencyKey.objects.get().response_encrypted
        assert stored and first.json()["execution_id"] not in stored

    def test_resume_is_replayed_and_the_task_reruns_once(self, world: World) -> None:
        from tests.support import sample_flows  # noqa: F401  (registers test_crew)

        DeploymentFlow.objects.create(deployment=world.deployment, flow_name="test_crew")
        kicked = post(world, f"/api/v1/deployments/{world.deployment.pk}/kickoff/", {"flow": "test_crew"}, None)
        run_id = kicked.json()["execution_id"]
        path = f"/api/v1/deployments/{world.deployment.pk}/resume/"
        body = {"execution_id": run_id, "task_id": "research_task", "human_feedback": "More.", "is_approve": False}
        first = post(world, path, body, "resume-1")
        again = post(world, path, body, "resume-1")
        assert first.status_code == again.status_code == 200, first.content
        assert again["Idempotent-Replayed"] == "true"
        assert FlowRun.objects.get(pk=run_id).state["drafts"] == ["none", "More."]

    def test_keys_older_than_a_day_are_purged_by_the_sweep_and_then_run_again(self, world: World) -> None:
        post(world, "/api/v1/requests/", BODY, "old-key")
        IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
        post(world, "/api/v1/requests/", BODY, "fresh-key")
        sweep()
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh-key"]
        again = post(world, "/api/v1/requests/", BODY, "old-key")
        assert again.status_code == 201
        assert not again.has_header("Idempotent-Replayed")
        assert HITLRequest.objects.count() == 3

    def test_the_header_is_in_the_openapi_schema(self, world: World) -> None:
        schema = world.client_for("manager").get("/api/schema/?format=json").json()
        for path in (
            "/api/v1/requests/",
            "/api/v1/requests/{id}/respond/",
            "/api/v1/requests/{id}/cancel/",
            "/api/v1/deployments/{deployment_id}/kickoff/",
            "/api/v1/deployments/{deployment_id}/resume/",
        ):
            names = [(p["name"], p["in"]) for p in schema["paths"][path]["post"].get("parameters", [])]
            assert ("Idempotency-Key", "header") in names, path


def _in_progress(world: World, key: str, age: timedelta) -> IdempotencyKey:
    """A key row left in progress `age` ago, as a call that has not finished (or never will) leaves it."""
    from hitl.idempotency import fingerprint

    key_id = world.deployment.api_keys.get(name="full").pk
    return IdempotencyKey.objects.create(
        principal=f"key:{key_id}",
        key=key,
        fingerprint=fingerprint("POST", "/api/v1/requests/", BODY),
        created_at=timezone.now() - age,
    )


@pytest.mark.django_db(transaction=True)
class TestAKeyLeftByADeadProcess:
    """The call commits with its key's completion; on PostgreSQL it holds the key's row lock while it
    runs, so a key in progress and unlocked is a call that died (nothing happened): taken over after
    10 s, not 10 minutes (issue 21: a host killed mid-call blocked its clients' retries that long)."""

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks tell a live call on PostgreSQL")
    def test_an_unlocked_key_in_progress_for_over_10_s_is_taken_over(self) -> None:
        world = build_world()
        _in_progress(world, "dead-call", timedelta(seconds=11))
        response = post(world, "/api/v1/requests/", BODY, "dead-call")
        assert response.status_code == 201, response.content
        assert HITLRequest.objects.count() == 1
        assert IdempotencyKey.objects.get(key="dead-call").completed_at is not None

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks tell a live call on PostgreSQL")
    def test_a_key_whose_call_is_still_running_is_409_however_old(self) -> None:
        import threading

        from django.db import connections, transaction

        world = build_world()
        row = _in_progress(world, "slow-call", timedelta(minutes=5))
        locked, done = threading.Event(), threading.Event()

        def live_call() -> None:  # another process's call, holding its key's lock
            with transaction.atomic():
                list(IdempotencyKey.objects.select_for_update().filter(pk=row.pk))
                locked.set()
                done.wait(10)
            connections.close_all()

        thread = threading.Thread(target=live_call)
        thread.start()
        try:
            assert locked.wait(10)
            response = post(world, "/api/v1/requests/", BODY, "slow-call")
        finally:
            done.set()
            thread.join(10)
        assert response.status_code == 409 and response.json()["code"] == "idempotency_in_progress"
        assert HITLRequest.objects.count() == 0

    def test_a_fresh_key_in_progress_is_409_and_one_10_minutes_old_is_taken_over(self) -> None:
        world = build_world()
        _in_progress(world, "fresh", timedelta(seconds=2))
        assert post(world, "/api/v1/requests/", BODY, "fresh").status_code == 409
        _in_progress(world, "old", timedelta(minutes=11))
        assert post(world, "/api/v1/requests/", BODY, "old").status_code == 201
        assert HITLRequest.objects.count() == 1


POSTER = """
import sys, time, httpx
url, key, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
r = httpx.post(url, json={"message": "Publish?", "emit_options": ["approved", "rejected"]},
               headers={"Authorization": "Bearer " + key, "Idempotency-Key": "one-key"}, timeout=30)
print(r.status_code, r.headers.get("Idempotent-Replayed", ""), r.json().get("id") or r.json().get("code"))
"""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a real cross-process race needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
class TestConcurrentDuplicates:
    def test_several_processes_with_one_key_make_one_request_one_email_one_webhook(
        self, live_server: Any, receiver: Receiver
    ) -> None:
        world = build_world()
        _, receiver.secret = webhook_outbox.create_webhook(world.deployment, url=receiver.url, actor="test")
        start = time.time() + 1.5
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", POSTER, f"{live_server.url}/api/v1/requests/", world.key, str(start)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        lines = [p.communicate(timeout=60)[0].split() for p in processes]
        assert HITLRequest.objects.count() == 1
        created = str(HITLRequest.objects.get().pk)
        for status, *rest in lines:
            # The winner (201), replays of it (201 + header), or "still in progress" (409): never a second one.
            assert status in ("201", "409"), lines
            assert rest[-1] in (created, "idempotency_in_progress"), lines
        assert sum(1 for status, *rest in lines if status == "201" and len(rest) == 1) == 1, lines
        receiver.wait_for(1)
        time.sleep(0.5)
        assert len(mail.outbox) == 1
        assert WebhookDelivery.objects.count() == 1
        assert [json.loads(r.body)["event"] for r in receiver.received] == ["new_request"]
