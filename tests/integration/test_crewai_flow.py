"""A real CrewAI flow (in its own virtualenv) pauses through our provider, is answered by email reply,
and our resumer resumes it: the `approved` listener runs with the reviewer's feedback, no LLM. The
client is the one installed in that virtualenv (`pip install ./hitl/client`, make crewai-venv), never
the checkout on a PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client

from hitl.models import HITLRequest
from tests.support import esp_payloads as esp
from tests.support.base import build_world

CREWAI_PYTHON = os.environ.get("CREWAI_PYTHON", "")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CREWAI_PYTHON, reason="set CREWAI_PYTHON to a virtualenv with crewai (.ci/run does)"),
]


def crewai(*args: str, home: Path) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")},
        "HOME": str(home),
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "OTEL_SDK_DISABLED": "true",
    }
    out = subprocess.run(
        # Run from a temporary directory: neither the checkout nor the script's folder gives `hitl_client`.
        [CREWAI_PYTHON, "-I", str(ROOT / "tests/integration/crewai_flow.py"), *args],
        cwd=home,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


class TestCrewAIFlow:
    def test_it_pauses_through_us_and_resumes_after_an_email_reply(self, live_server, tmp_path) -> None:
        world = build_world()
        db = str(tmp_path / "crewai-flows.db")
        paused = crewai("kickoff", live_server.url, world.key, db, home=tmp_path)
        request = HITLRequest.objects.get(pk=paused["request_id"])
        assert (request.method_name, request.flow_id, request.emit_options) == (
            "review",
            paused["flow_id"],
            ["approved", "rejected"],
        )
        assert request.assigned_to_email == "writer@example.com"
        assert request.content == "A post about durable human review."

        notification = next(m for m in mail.outbox if m.to == ["writer@example.com"])
        response = esp.reply(
            Client(),
            "postmark",
            sender="writer@example.com",
            to=notification.reply_to[0],
            body="Approved! Ship it on Monday.\n\n" + esp.QUOTED_ORIGINAL,
        )
        assert response.status_code == 200
        assert HITLRequest.objects.get(pk=request.pk).status == "responded"

        resumed = crewai("resume", live_server.url, world.key, db, paused["flow_id"], home=tmp_path)
        assert resumed["ran"] == ["publish:approved:Ship it on Monday."]
