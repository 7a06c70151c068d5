"""Kickoff webhooks of a run (taskWebhookUrl, stepWebhookUrl, crewWebhookUrl): their payloads, signed as
in SPEC §6 with the run's own secret (returned once by the kickoff), sent by a django-q2 task through the
one egress seam (`hitl.lib.http`: timeouts, no private addresses unless allow-listed)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction

from audit.models import EventType
from audit.services import record_event
from flows.errors import FlowError
from flows.models import FlowRun
from hitl.lib import crypto, http
from hitl.lib.queue import enqueue, enqueue_in
from hitl.lib.webhook_signing import signature_headers

logger = logging.getLogger(__name__)

KEYS = ("taskWebhookUrl", "stepWebhookUrl", "crewWebhookUrl")
MAX_ATTEMPTS = 4


def check_urls(urls: dict[str, str]) -> dict[str, str]:
    """Refuse unusable URLs at kickoff/resume (a 400 now beats a silent failure later)."""
    clean = {key: value for key, value in urls.items() if key in KEYS and value}
    for key, url in clean.items():
        try:
            http.check_url(url, resolve_dns=False)
        except http.EgressError as exc:
            raise FlowError(f"{key}: {exc.detail}", "invalid_webhook_url") from None
    return clean


def send(run_id: str, key: str, payload: dict[str, Any]) -> None:
    """Schedule one signed POST to the run's `key` URL, if it has one (after the current commit)."""
    run = FlowRun.objects.filter(pk=run_id).only("webhooks").first()
    url = (run.webhooks or {}).get(key) if run else None
    if not url:
        return
    message_id = f"msg_{uuid.uuid4().hex}"
    body = json.dumps(payload, separators=(",", ":"), default=str)
    # The URL travels with the delivery: a resume may replace the run's URLs before a worker sends this.
    transaction.on_commit(lambda: enqueue("flows.tasks.deliver_run_webhook", run_id, key, body, message_id, 1, url))


def deliver(run_id: str, key: str, body: str, message_id: str, attempt: int, url: str = "") -> None:
    """One attempt; retries (same webhook-id) with backoff on timeouts, connection errors, 429, 5xx."""
    run = FlowRun.objects.filter(pk=run_id).first()
    # Deliveries queued before URLs travelled with them carry none: the run's URL is all there is.
    url = url or ((run.webhooks or {}).get(key, "") if run else "")
    if run is None or not url or not run.webhook_secret:
        return
    secret = crypto.decrypt(run.webhook_secret)
    timestamp = int(time.time())
    headers = signature_headers(secret, message_id, timestamp, body)
    status, error = 0, ""
    try:
        response = http.post_json(url, body, headers=headers, timeout=settings.HITL_WEBHOOK_TIMEOUT)
        status = response.status
        retryable = status == 429 or status >= 500
        if response.ok:
            record_event(
                EventType.WEBHOOK_DELIVERED,
                target=run,
                deployment_id=run.deployment_id,
                data={"kind": key, "url": url, "status": status, "webhook_id": message_id},
            )
            return
        error = f"HTTP {status}"
    except http.EgressError as exc:
        error, retryable = exc.detail, exc.retryable
    if retryable and attempt < MAX_ATTEMPTS:
        enqueue_in(
            2**attempt * settings.HITL_WEBHOOK_RETRY_BASE,
            "flows.tasks.deliver_run_webhook",
            run_id,
            key,
            body,
            message_id,
            attempt + 1,
            url,
        )
        return
    logger.warning("run %s: %s to %s failed: %s", run_id, key, url, error)
    record_event(
        EventType.WEBHOOK_FAILED,
        target=run,
        deployment_id=run.deployment_id,
        data={"kind": key, "url": url, "status": status, "error": error, "attempts": attempt, "webhook_id": message_id},
    )


def notify_task_webhook(run_id: str, task_id: str, output: Any) -> None:
    send(
        run_id,
        "taskWebhookUrl",
        {"execution_id": run_id, "task_id": task_id, "output": output, "status": "pending_human_input"},
    )


def notify_step_webhook(run_id: str, method: str, output: Any, result: dict[str, Any] | None = None) -> None:
    payload = {"execution_id": run_id, "step": method, "status": "completed", "output": output}
    if result is not None:
        payload["result"] = result  # a human step's answer (SPEC §2 result)
    send(run_id, "stepWebhookUrl", payload)


def notify_crew_webhook(run_id: str) -> None:
    run = FlowRun.objects.filter(pk=run_id).first()
    if run is not None:
        send(
            run_id,
            "crewWebhookUrl",
            {
                "execution_id": run_id,
                "status": run.status,
                "state": run.state,
                "outcome": run.outcome,
                "error": run.error,
            },
        )
