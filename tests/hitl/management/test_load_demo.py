"""`manage.py load_demo`: links on HITL_BASE_URL, and what it created alone on the last line (SPEC §11)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Deployment

pytestmark = pytest.mark.django_db


def output() -> list[str]:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue().strip().splitlines()


class TestLoadDemoOutput:
    def test_it_prints_links_on_the_configured_base_url(self, settings) -> None:
        settings.HITL_BASE_URL = "https://hitl.acme.test"
        text = "\n".join(output())
        assert "127.0.0.1" not in text
        assert "https://hitl.acme.test/admin/" in text
        deployment = Deployment.objects.get()
        assert f"https://hitl.acme.test/api/v1/deployments/{deployment.pk}/kickoff/" in text

    def test_its_last_line_is_the_demo_deployment_id_every_time(self) -> None:
        first = output()[-1]
        assert first == str(Deployment.objects.get().pk)
        assert output()[-1] == first
