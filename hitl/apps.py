from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HitlConfig(AppConfig):
    name = "hitl"
    verbose_name = "Human-in-the-loop requests"

    def ready(self) -> None:
        from hitl import (
            checks,  # noqa: F401  (registers the system checks)
            config_cache,
        )
        from hitl.inbound import receivers  # noqa: F401  (connects the inbound email signal)
        from hitl.schedules import ensure_schedules

        config_cache.connect_signals()  # rules and webhooks cached per process, by deployment version

        # After django_q's tables exist: connected without a sender, it runs once per migrate
        # for every app, so only act on our own app's signal.
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="hitl.ensure_schedules")
