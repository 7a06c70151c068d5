"""django-q2 task functions of the audit log (schedules in hitl.schedules): thin and idempotent."""

from __future__ import annotations

import logging

from django.conf import settings

from audit.services import LegacyLogError, make_checkpoint, seal_events, send_checkpoint

logger = logging.getLogger("audit")


def seal() -> int:
    """The minute backstop of the worker's sealer thread (a plain `qcluster` has no such thread)."""
    try:
        return seal_events()
    except LegacyLogError as exc:
        logger.error("audit sealer: %s", exc)
        return 0


def checkpoint() -> None:
    """Every few minutes: a signed checkpoint, sent out of the database."""
    if not settings.HITL_AUDIT_SIGNING_KEY:
        logger.warning("audit checkpoint skipped: HITL_AUDIT_SIGNING_KEY is not set")
        return
    send_checkpoint(make_checkpoint())
