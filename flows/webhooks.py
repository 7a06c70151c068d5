"""Kickoff webhooks of crew-style runs (taskWebhookUrl, stepWebhookUrl, crewWebhookUrl)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def send(run_id: str, key: str, payload: dict[str, Any]) -> None:
    from flows.models import FlowRun

    run = FlowRun.objects.filter(pk=run_id).first()
    url = (run.webhooks or {}).get(key) if run else None
    if not url:
        return
    from flows.delivery import deliver_run_webhook

    deliver_run_webhook(run, url, key, payload)
