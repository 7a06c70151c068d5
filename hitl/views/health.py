"""Health and metrics endpoints for load balancers, orchestrators and Prometheus (SPEC §17)."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers; touches nothing else (a liveness probe must not fail for a database outage)."""
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _check_migrations() -> dict[str, Any]:
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return {
            "ok": False,
            "reason": f"{len(plan)} migration(s) not applied, e.g. {plan[0][0].app_label}.{plan[0][0].name}",
        }
    return {"ok": True}


def _check_broker() -> dict[str, Any]:
    from django_q.brokers import get_broker

    if not get_broker().ping():
        return {"ok": False, "reason": "the broker did not answer"}
    return {"ok": True}


def _check_audit_sealing() -> dict[str, Any]:
    """SPEC §18: an audit event left unsealed for over a minute means the sealer is not running."""
    from audit.services import unsealed_alarm

    stale, oldest = unsealed_alarm()
    if stale:
        return {"ok": False, "reason": f"{stale} audit events unsealed since {oldest:%Y-%m-%dT%H:%M:%SZ}"}
    return {"ok": True}


CHECKS = {
    "database": _check_database,
    "migrations": _check_migrations,
    "broker": _check_broker,
    "audit": _check_audit_sealing,
}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready to serve: database reachable, every migration applied, broker reachable, no audit event
    waiting unsealed for over a minute (200), else 503 with the reason of each failed check."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure of a dependency is a reason to take this process out
            results[name] = {"ok": False, "reason": f"{type(exc).__name__}: {exc}"[:500]}
    ready = all(r["ok"] for r in results.values())
    body = {"status": "ok" if ready else "unavailable", "checks": results}
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text; behind `Authorization: Bearer $HITL_METRICS_TOKEN` when that is set."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.registry import CollectorRegistry

    from hitl.metrics import HitlCollector

    token = settings.HITL_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = JsonResponse(
                {
                    "detail": "A valid metrics token is required (Authorization: Bearer …).",
                    "code": "metrics_token_required",
                },
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HitlCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
