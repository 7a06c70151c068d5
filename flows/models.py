"""Server-side flow runs (SPEC §8): which flows a deployment may run, each run, and its steps."""

from __future__ import annotations

import uuid

from django.db import models

from accounts.models import Deployment
from hitl.lib.crypto import EncryptedTextField
from hitl.models import HITLRequest


class DeploymentFlow(models.Model):
    """A registered flow (by name, see flows.registry) attached to a deployment."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="flows")
    flow_name = models.CharField(max_length=100)

    class Meta:
        unique_together = [("deployment", "flow_name")]

    def __str__(self) -> str:
        return self.flow_name


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    WAITING = "waiting_for_human", "Waiting for a human"
    PENDING_HUMAN_INPUT = "pending_human_input", "Pending human input"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


ACTIVE_RUN_STATUSES = (RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PENDING_HUMAN_INPUT)


class FlowRun(models.Model):
    """One execution. `queue` holds the steps still to run; `seq` is the compare-and-set guard that
    makes every step (and every resume) happen once even when a task is delivered twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="flow_runs")
    flow_name = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    inputs = models.JSONField(default=dict, blank=True)
    state = models.JSONField(default=dict, blank=True)
    queue = models.JSONField(default=list, blank=True)
    and_progress = models.JSONField(default=dict, blank=True, help_text="and_() listeners: events seen so far.")
    task_feedback = models.JSONField(default=dict, blank=True, help_text="Crew-style task id → feedback list.")
    seq = models.PositiveIntegerField(default=0)
    # Always a request created by this run's engine, with flow_id = str(run.pk): `flows.channel`
    # looks for a waiting run only when the request has a flow_id.
    pending_request = models.ForeignKey(
        HITLRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="waiting_runs"
    )
    pending_task = models.CharField(max_length=100, blank=True)
    webhooks = models.JSONField(default=dict, blank=True, help_text="taskWebhookUrl, stepWebhookUrl, crewWebhookUrl")
    webhook_secret = EncryptedTextField(blank=True, help_text="Signs this run's kickoff webhooks (shown once).")
    outcome = models.CharField(max_length=200, blank=True, help_text="Why it ended (e.g. rejected by a reviewer).")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.flow_name} {self.id} ({self.status})"


class StepStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    WAITING = "waiting", "Waiting for a human"
    FAILED = "failed", "Failed"


class FlowStep(models.Model):
    """One executed method of a run, with what went in and came out."""

    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveIntegerField()
    method_name = models.CharField(max_length=100)
    trigger = models.CharField(max_length=200, blank=True, help_text="The event that started it.")
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="A human step's answer (SPEC §2 result).")
    status = models.CharField(max_length=10, choices=StepStatus.choices)
    error = models.TextField(blank=True)
    request = models.ForeignKey(HITLRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        unique_together = [("run", "seq")]

    def __str__(self) -> str:
        return f"{self.seq}. {self.method_name} ({self.status})"
