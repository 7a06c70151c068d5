from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Deployment
from hitl.services import add_routing_rule


class Command(BaseCommand):
    help = "Add a routing rule to a deployment; prints the rule id alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deployment", type=int, required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--method-pattern", required=True)
        parser.add_argument("--flow-pattern", default="")
        parser.add_argument("--assign-to-email", default="")
        parser.add_argument("--assign-from-input", default="")
        parser.add_argument("--condition", action="append", default=[], help='e.g. "amount >= 10000" (repeatable)')
        parser.add_argument("--priority", type=int, default=100)

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = Deployment.objects.filter(pk=options["deployment"]).first()
        if deployment is None:
            raise CommandError(f"No deployment with id {options['deployment']}.")
        try:
            rule = add_routing_rule(
                deployment,
                name=options["name"],
                method_pattern=options["method_pattern"],
                flow_pattern=options["flow_pattern"],
                assign_to_email=options["assign_to_email"],
                assign_from_input=options["assign_from_input"],
                conditions="\n".join(options["condition"]),
                priority=options["priority"],
                actor="cli",
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(str(rule.pk))
