from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from flows import demo  # noqa: F401  (registers the demo flows)
        from hitl.channels import register

        # A flow registers itself when its module is imported; the web server and every worker import the
        # user's modules here, so a kickoff and the step tasks it enqueues find the same flows.
        for path in getattr(settings, "HITL_FLOW_MODULES", []):
            try:
                import_module(path)
            except ImportError as exc:
                raise ImproperlyConfigured(f"HITL_FLOW_MODULES: cannot import {path!r}: {exc}") from exc

        # A flow run waiting on a request resumes when it resolves (flows.channel.FlowChannel).
        register("flows.channel.FlowChannel")
