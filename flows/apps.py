from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from flows import demo  # noqa: F401  (registers the demo flows)
