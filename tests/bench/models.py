from django.db import models


class BaselineRow(models.Model):
    """The one row the baseline view inserts per request."""

    created_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(default=dict)

    objects: models.Manager["BaselineRow"] = models.Manager()

    def __str__(self) -> str:
        return f"baseline row {self.pk}"
