"""`load_demo_history` (called by `load_demo`) gives `make run` weeks of answered requests to chart."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from accounts.models import Deployment
from audit.services import verify_chain
from hitl.models import HITLRequest, Resolution, Status

pytestmark = pytest.mark.django_db


class TestDemoHistory:
    def test_it_loads_weeks_of_history_once(self) -> None:
        call_command("load_demo", stdout=StringIO())
        deployment = Deployment.objects.get()
        requests = HITLRequest.objects.filter(deployment=deployment)
        assert requests.count() > 200
        assert requests.exclude(status=Status.PENDING).count() == Resolution.objects.count()
        statuses = set(requests.values_list("status", flat=True).distinct())
        assert {Status.RESPONDED, Status.AUTO_RESPONDED, Status.CANCELLED} <= statuses
        assert len({d.date() for d in requests.values_list("created_at", flat=True)}) > 35
        out = StringIO()
        call_command("load_demo_history", stdout=out)
        assert "already loaded" in out.getvalue()
        assert HITLRequest.objects.count() == requests.count()
        assert verify_chain()[1] is None

    def test_the_analytics_page_shows_it(self) -> None:
        call_command("load_demo", stdout=StringIO())
        client = Client()
        client.force_login(get_user_model().objects.get(username="admin"))
        response = client.get("/analytics/")
        assert response.status_code == 200
        chart = response.context["chart_data"]
        assert sum(chart["created"]) > 150 and any(m is not None for m in chart["median"])

    def test_it_needs_the_demo_deployment(self) -> None:
        out = StringIO()
        call_command("load_demo_history", stdout=out)
        assert "run `manage.py load_demo` first" in out.getvalue()
