"""GET /healthz, /readyz and /metrics (SPEC §17), and the log line format."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.support.base import World
from tests.support.qcluster import database_url

BASE_DIR = Path(__file__).resolve().parents[3]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_subprocess(path: str, **env: str) -> tuple[int, Any]:
    """GET `path` through Django's test client in a fresh process configured by environment only."""
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        f"r = Client().get({path!r}); print(r.status_code); print(r.content.decode())"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    base.update(DJANGO_SETTINGS_MODULE="hitl.settings", DEBUG="1", ALLOWED_HOSTS="testserver", **env)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=base, capture_output=True, text=True, timeout=60
    )
    status, _, body = out.stdout.partition("\n")
    assert status, out.stderr
    return int(status), json.loads(body)


def scrape(client: Client, **headers: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


class TestHealthz:
    def test_it_answers_200(self, db: None) -> None:
        response = Client().get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}


class TestReadyz:
    def test_it_is_200_when_database_migrations_and_broker_are_fine(self, db: None) -> None:
        response = Client().get("/readyz")
        assert response.status_code == 200, response.content
        assert response.json()["checks"] == {
            "database": {"ok": True},
            "migrations": {"ok": True},
            "broker": {"ok": True},
            "audit": {"ok": True},
        }

    def test_it_is_503_with_a_reason_when_postgresql_is_unreachable(self) -> None:
        status, body = in_subprocess("/readyz", DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/hitl")
        assert status == 503 and body["status"] == "unavailable"
        assert body["checks"]["database"]["ok"] is False
        assert "OperationalError" in body["checks"]["database"]["reason"]

    def test_it_is_503_when_migrations_are_missing(self, tmp_path: Path) -> None:
        status, body = in_subprocess("/readyz", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        assert status == 503 and body["checks"]["database"] == {"ok": True}
        assert "not applied" in body["checks"]["migrations"]["reason"]

    def test_it_is_503_when_redis_is_unreachable(self, transactional_db: None) -> None:
        status, body = in_subprocess(
            "/readyz", DATABASE_URL=database_url(), REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"
        )
        assert status == 503 and body["checks"]["broker"]["ok"] is False
        assert body["checks"]["database"] == {"ok": True} and body["checks"]["migrations"] == {"ok": True}

    def test_it_is_503_when_an_audit_event_waited_unsealed_over_a_minute(self, world: World) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from audit.lib.triggers import triggers_disabled
        from audit.models import AuditEvent
        from audit.services import record_event

        event = record_event("config.changed")
        with triggers_disabled():  # a sealer that has been down for a minute
            AuditEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(seconds=61))
        response = Client().get("/readyz")
        assert response.status_code == 503
        assert "unsealed since" in response.json()["checks"]["audit"]["reason"]


class TestMetrics:
    def test_it_reports_every_named_metric_from_the_database(self, world: World) -> None:
        answered, pending, cancelled = world.create(), world.create(), world.create()
        world.create("other_key")
        callback = urlparse(answered["callback_url"]).path
        assert APIClient().post(callback, {"feedback": "approved"}, format="json").status_code == 200
        assert world.client_for("key").post(f"/api/v1/requests/{cancelled['id']}/cancel/").status_code == 200
        m = scrape(Client())
        here, there = (("deployment", str(world.deployment.pk)),), (("deployment", str(world.other.pk)),)
        assert m["hitl_requests_pending"] == {here: 1, there: 1}
        assert m["hitl_requests_overdue"] == {here: 0, there: 0}
        assert 0 <= m["hitl_oldest_pending_age_seconds"][here] < 60
        assert m["hitl_requests_created_total"] == {(): 4}
        resolved = m["hitl_requests_resolved_total"]
        assert resolved[(("source", "api"), ("status", "responded"))] == 1 and sum(resolved.values()) == 2
        assert m["hitl_response_time_seconds_count"] == {(): 1}
        assert m["hitl_response_time_seconds_bucket"][(("le", "10.0"),)] == 1
        assert m["hitl_response_time_seconds_bucket"][(("le", "+Inf"),)] == 1
        assert m["hitl_webhook_deliveries_total"] == {(("result", "delivered"),): 0, (("result", "failed"),): 0}
        assert m["hitl_queue_depth"] == {(): 0} and m["hitl_tasks_failed_total"] == {(): 0}
        assert pending["id"]

    def test_notification_failures_are_counted_per_channel(self, world: World, settings: Any) -> None:
        settings.EMAIL_BACKEND = "tests.support.failing_backend.FailingBackend"
        world.create(assign_to="reviewer@example.com")
        m = scrape(Client())
        assert m["hitl_notification_failures_total"] == {(("channel", "email"),): 1}
        # The failed notification is still owed (its retry waits out the backoff), not yet overdue.
        assert m["hitl_outbox_pending"] == {(("outbox", "notification"),): 1, (("outbox", "webhook"),): 0}
        assert m["hitl_outbox_overdue"][(("outbox", "notification"),)] == 0

    def test_a_notification_nobody_takes_is_overdue(self, world: World) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from hitl.models import NotificationDelivery

        world.create(assign_to="reviewer@example.com")
        NotificationDelivery.objects.update(status="pending", next_attempt_at=timezone.now() - timedelta(minutes=6))
        assert scrape(Client())["hitl_outbox_overdue"][(("outbox", "notification"),)] == 1

    def test_a_scrape_costs_the_same_few_queries_at_any_size(self, world: World) -> None:
        world.create()
        with CaptureQueriesContext(connection) as small:
            scrape(Client())
        for _ in range(5):
            world.create()
            world.create("other_key")
        with CaptureQueriesContext(connection) as large:
            scrape(Client())
        assert len(small) == len(large) <= 10, [q["sql"] for q in large.captured_queries]

    def test_the_token_is_required_when_set(self, db: None, settings: Any) -> None:
        settings.HITL_METRICS_TOKEN = "s3cret-metrics"
        refused = Client().get("/metrics")
        assert refused.status_code == 401 and refused.json()["code"] == "metrics_token_required"
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert "hitl_requests_created_total" in scrape(Client(), HTTP_AUTHORIZATION="Bearer s3cret-metrics")


class TestLogFormat:
    def run_logging(self, **env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        base.update(DJANGO_SETTINGS_MODULE="hitl.settings", DEBUG="1", **env)
        script = "import django, logging; django.setup(); logging.getLogger('hitl.probe').warning('hello %s', 'ops')"
        out = subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, env=base, capture_output=True, text=True)
        return out.stderr.strip().splitlines()[-1]

    def test_a_line_has_time_level_logger_and_message(self) -> None:
        line = self.run_logging()
        date, time_, level, logger, message = line.split(" ", 4)
        assert (level, logger, message) == ("WARNING", "hitl.probe", "hello ops")
        assert len(date) == 10 and ":" in time_

    def test_json_lines_with_hitl_log_format_json(self) -> None:
        entry = json.loads(self.run_logging(HITL_LOG_FORMAT="json"))
        assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "hitl.probe", "hello ops")
        assert entry["time"].startswith("20")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_it_refuses_anything_but_get(db: None, path: str) -> None:
    assert Client().post(path).status_code == 405
