"""Demo data for `make run`: idempotent; prints credentials the first time only, links on HITL_BASE_URL, and
the demo deployment's id alone on the last line (SPEC §11)."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from guardian.shortcuts import assign_perm

from accounts.models import Deployment
from accounts.services import create_api_key, create_deployment
from flows.services import attach_flows
from hitl.lib.links import absolute
from hitl.services import add_routing_rule

DEMO_ORG = "Demo Org"
DEMO_DEPLOYMENT = "Content Review"


class Command(BaseCommand):
    help = "Load demo data (organization, deployment, routing rules, admin user, API key). Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        deployment = Deployment.objects.filter(organization__name=DEMO_ORG, name=DEMO_DEPLOYMENT).first()
        if deployment is not None:
            self.stdout.write("Demo data already loaded; the demo deployment's id:")
            self.stdout.write(str(deployment.pk))
            return

        password = secrets.token_urlsafe(12)
        admin = User.objects.filter(username="admin").first()
        if admin is None:
            admin = User.objects.create_superuser("admin", "admin@example.com", password)
        else:
            password = "(unchanged)"

        deployment = create_deployment(
            name=DEMO_DEPLOYMENT,
            creator_email="creator@example.com",
            organization=DEMO_ORG,
            actor="demo",
        )
        attach_flows(deployment, ["content_approval", "article_picker", "expense_approval"], actor="demo")
        deployment.sla_target_minutes = 60
        deployment.save(update_fields=["sla_target_minutes"])
        add_routing_rule(
            deployment,
            name="Big expenses to the CFO",
            method_pattern="approve_*",
            conditions="amount >= 10000",
            assign_to_email="cfo@example.com",
            priority=10,
            actor="demo",
        )
        add_routing_rule(
            deployment,
            name="Approvals to Finance",
            method_pattern="approve_*",
            assign_to_email="finance@example.com",
            priority=20,
            actor="demo",
        )
        add_routing_rule(
            deployment,
            name="Route to Sales Rep",
            method_pattern="review_*",
            assign_from_input="sales_rep_email",
            assign_to_email="sales@example.com",
            priority=30,
            actor="demo",
        )
        reviewer = User.objects.filter(username="reviewer").first() or User.objects.create_user(
            "reviewer", "finance@example.com", password if password != "(unchanged)" else secrets.token_urlsafe(12)
        )
        assign_perm("accounts.respond_to_human_feedback", reviewer, deployment)
        assign_perm("accounts.manage_human_feedback", admin, deployment)
        _, key = create_api_key(deployment, name="demo", actor="demo")
        call_command("load_demo_history", stdout=self.stdout)  # six weeks of answers for /analytics/

        self.stdout.write(self.style.SUCCESS("Demo data loaded. Shown once — note them now:"))
        self.stdout.write(f"  admin user:     admin / {password}   ({absolute('/admin/')})")
        self.stdout.write(f"  reviewer user:  reviewer / {password}   (finance@example.com; {absolute('/inbox/')})")
        self.stdout.write(f"  deployment id:  {deployment.pk}")
        self.stdout.write(f"  API key:        {key}")
        self.stdout.write(
            f"  try:  curl -s -X POST {absolute('/api/v1/requests/')} "
            f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            '-d \'{"method_name": "approve_payment", "message": "Pay invoice 42?", '
            '"emit_options": ["approved", "rejected"], "state": {"amount": 120}}\''
        )
        self.stdout.write(
            f"  or run a flow: curl -s -X POST {absolute(f'/api/v1/deployments/{deployment.pk}/kickoff/')} "
            f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            '-d \'{"flow": "content_approval", "inputs": {}}\''
        )
        self.stdout.write(str(deployment.pk))
