"""`manage.py create_deployment` (SPEC §11): attaches registered flows, refuses what it cannot create."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Deployment
from flows.models import DeploymentFlow

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


class TestCreateDeploymentFlows:
    def test_it_attaches_registered_flows(self) -> None:
        deployment_id = run(
            "create_deployment",
            "--name",
            "Marketing",
            "--creator-email",
            "lead@example.com",
            "--flow",
            "content_approval",
            "--flow",
            "article_picker",
        )
        names = DeploymentFlow.objects.filter(deployment_id=int(deployment_id)).values_list("flow_name", flat=True)
        assert sorted(names) == ["article_picker", "content_approval"]

    def test_it_refuses_an_unknown_flow_and_creates_nothing(self) -> None:
        with pytest.raises(CommandError, match=r"Unknown flow\(s\): nope.*content_approval"):
            run("create_deployment", "--name", "M", "--creator-email", "lead@example.com", "--flow", "nope")
        assert not Deployment.objects.exists()

    def test_it_refuses_an_invalid_creator_email(self) -> None:
        with pytest.raises(CommandError, match="not a valid email address"):
            run("create_deployment", "--name", "M", "--creator-email", "not-an-email")
        assert not Deployment.objects.exists()


class TestDuplicateName:
    def test_it_refuses_a_second_deployment_of_the_same_name_clearly(self, db: None) -> None:
        import io

        import pytest
        from django.core.management import CommandError, call_command

        call_command("create_deployment", "--name", "Ops", "--creator-email", "a@example.com", stdout=io.StringIO())
        with pytest.raises(CommandError, match="already has a deployment named 'Ops'"):
            call_command("create_deployment", "--name", "Ops", "--creator-email", "a@example.com", stdout=io.StringIO())
