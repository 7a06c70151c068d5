from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from flows import demo  # noqa: F401  (registers the demo flows)
        from hitl.channels import register

        # A flow run waiting on a request resumes when it resolves (flows.channel.FlowChannel).
        register("flows.channel.FlowChannel")
