from django.apps import AppConfig


class HitlConfig(AppConfig):
    name = "hitl"
    verbose_name = "Human-in-the-loop requests"

    def ready(self) -> None:
        from hitl import checks, receivers  # noqa: F401  (connects signals, registers checks)
