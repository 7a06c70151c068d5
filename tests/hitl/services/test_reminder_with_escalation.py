"""A reminder and an escalation due in the same sweep: the original assignee is reminded (on a real
broker, where the reminder's task runs after the sweep), then the chain's next email takes over."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail

from hitl.models import HITLRequest
from hitl.services.sweep import sweep
from tests.support.base import build_world
from tests.support.qcluster import QCluster
from tests.support.queue_drain import run_queued


class TestReminderWithEscalation:
    def test_the_original_assignee_is_reminded_before_the_chain_moves_on(self, qcluster: QCluster) -> None:
        world = build_world()
        world.deployment.reminder_after_minutes = 10
        world.deployment.escalation_after_minutes = 10
        world.deployment.escalation_emails = ["lead@example.com"]
        world.deployment.save()
        rid = world.create(assign_to="alice@example.com")["id"]
        run_queued()
        mail.outbox.clear()
        start = HITLRequest.objects.get(pk=rid).created_at

        first = sweep(now=start + timedelta(minutes=10))
        run_queued()  # the worker gets to the reminder after the sweep's commits
        assert [(m.to, m.subject.split(":")[0]) for m in mail.outbox] == [(["alice@example.com"], "Reminder")]
        assert (first.reminded, first.escalated) == (1, 0)
        mail.outbox.clear()

        second = sweep(now=start + timedelta(minutes=11))
        run_queued()
        assert second.escalated == 1
        assert HITLRequest.objects.get(pk=rid).assigned_to_email == "lead@example.com"
        assert [(m.to, m.subject.split(":")[0]) for m in mail.outbox] == [(["lead@example.com"], "Assigned to you")]
