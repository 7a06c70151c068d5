"""Analytics rollups (SPEC §19): what the analytics figures count, pre-aggregated per UTC day, per ISO
week and per calendar month, kept by `hitl.services.rollups` in the same transaction as the change they count.

A rollup row is keyed by its time bucket and by every dimension the analytics filter and group by
(deployment, flow, method, reviewer = the assignee). Its children hold what does not fit in columns:
the response-time histogram (`RollupTime`), the answers per outcome and source (`RollupAnswer`) and
the approvers' decisions (`RollupApproval`). Every column is a sum, so rows add up over any set of
buckets and dimensions (the rows of reviewer `*` hold the sum over every reviewer, for the figures
that are not per reviewer), and `manage.py analytics_rebuild` can recompute them from the requests.

Imported by `hitl.models` so that Django registers them with the `hitl` app.
"""

from __future__ import annotations

from django.db import models

from accounts.models import Deployment


class Grain(models.TextChoices):
    DAY = "d", "UTC day"
    WEEK = "w", "ISO week (starting Monday, UTC)"
    MONTH = "m", "UTC calendar month"


class Rollup(models.Model):
    """Counts of one (bucket, deployment, flow, method, reviewer); reviewer `*` sums all reviewers.

    `created` counts by `created_at`'s bucket; the status counts, the SLA counts and the response-time
    sum by `resolved_at`'s bucket (as `hitl.analytics.figures` reports them). Every request is counted
    once in a DAY, a WEEK and a MONTH row, so a period is whole months, then whole weeks, then the days
    at its edges (`hitl.services.rollups.tiles`).
    """

    grain = models.CharField(max_length=1, choices=Grain.choices)
    day = models.DateField(help_text="The UTC day, the Monday of the ISO week or the first of the month.")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+", db_index=False)
    flow_name = models.CharField(max_length=200, blank=True)
    method_name = models.CharField(max_length=200, blank=True)
    reviewer = models.CharField(max_length=254, blank=True, help_text="The assignee (lower-case).")

    created = models.BigIntegerField(default=0)
    responded = models.BigIntegerField(default=0)
    auto_responded = models.BigIntegerField(default=0)
    timed_out = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    sla_total = models.BigIntegerField(default=0)
    sla_met = models.BigIntegerField(default=0)
    response_seconds = models.BigIntegerField(default=0, help_text="Sum of the human response times (s).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "day", "deployment", "flow_name", "method_name", "reviewer"], name="hitl_rollup_key"
            )
        ]
        indexes = [models.Index(fields=["reviewer", "grain", "day"], name="hitl_rollup_reviewer")]

    def __str__(self) -> str:
        return f"{self.grain} {self.day} {self.deployment_id} {self.flow_name}/{self.method_name} {self.reviewer}"


class RollupTime(models.Model):
    """One cell of a rollup's response-time histogram: the human answers whose whole-second response
    time falls in `bucket` (see `hitl.services.rollups.bucket_of`), with the least and the greatest of
    them. Cells merge by summing `n` and taking min/max, so any set of them is one histogram."""

    rollup = models.ForeignKey(Rollup, on_delete=models.CASCADE, related_name="times")
    bucket = models.SmallIntegerField()
    n = models.BigIntegerField(default=0)
    low = models.BigIntegerField(help_text="The least response time in the cell (s).")
    high = models.BigIntegerField(help_text="The greatest response time in the cell (s).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rollup", "bucket"], name="hitl_rollup_time_key")]

    def __str__(self) -> str:
        return f"{self.rollup_id} cell {self.bucket}: {self.n}"


class RollupAnswer(models.Model):
    """Answers (human or auto) per outcome (`""` for none) and source, resolved in the rollup's bucket."""

    rollup = models.ForeignKey(Rollup, on_delete=models.CASCADE, related_name="answers")
    human = models.BooleanField()
    outcome = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=20)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rollup", "human", "outcome", "source"], name="hitl_rollup_answer_key")
        ]

    def __str__(self) -> str:
        return f"{self.rollup_id} {self.outcome or '-'} via {self.source}: {self.n}"


class RollupApproval(models.Model):
    """Decisions of one approver (SPEC §13) on the requests *created* in the rollup's bucket, with the sum
    of their response times (decided − created) in microseconds."""

    rollup = models.ForeignKey(Rollup, on_delete=models.CASCADE, related_name="approvals")
    approver = models.CharField(max_length=254)
    n = models.BigIntegerField(default=0)
    microseconds = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rollup", "approver"], name="hitl_rollup_approval_key")]

    def __str__(self) -> str:
        return f"{self.rollup_id} {self.approver}: {self.n}"
