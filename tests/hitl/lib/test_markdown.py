"""Hostile Markdown renders in bounded time on the review page and in the email; a content that cannot
be rendered fails its notification, recorded (issue 14)."""

from __future__ import annotations

import time

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEvent
from hitl.lib import markdown
from hitl.models import HITLRequest
from tests.support.base import World

pytestmark = pytest.mark.django_db


def _page(world: World, content: str) -> tuple[str, float]:
    request_id = world.create(assign_to="responder@example.com", content=content)["id"]
    client = Client()
    client.force_login(world.responder)
    start = time.monotonic()
    response = client.get(f"/requests/{request_id}/")
    assert response.status_code == 200
    return response.content.decode(), time.monotonic() - start


class TestHostileMarkdown:
    @pytest.mark.parametrize(
        "content",
        ["[" * 20_000, "[a](" * 5_000, "**_" * 7_000, "> " * 20_000, "  - " * 10_000, "`" * 50_000],
        ids=["brackets", "links", "emphasis", "quotes", "lists", "backticks"],
    )
    def test_it_renders_hostile_patterns_quickly(self, world: World, content: str) -> None:
        _, elapsed = _page(world, content)
        assert elapsed < 3.0  # Python-Markdown: ~85 s for the brackets, RecursionError for the quotes

    def test_it_keeps_the_highlighting_classes_and_sanitises(self, world: World) -> None:
        page, _ = _page(
            world, "## Title\n\n```python\nx = 1\n```\n\n<script>alert(1)</script> [x](javascript:alert(1))"
        )
        assert "<h2>Title</h2>" in page and '<div class="codehilite"><pre><span></span><code>' in page
        assert '<span class="n">x</span>' in page
        assert "<script>alert" not in page and "javascript:alert" not in page

    def test_it_highlights_inline_in_the_email(self, world: World) -> None:
        world.create(assign_to="responder@example.com", content="```python\nx = 1\n```")
        html = mail.outbox[-1].alternatives[0][0]
        assert 'class="codehilite"' in html and "style=" in html


class TestUnrenderableContent:
    def test_it_fails_the_notification_recorded(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        # No content the API accepts is refused by the renderer today; lower its input bound to get one.
        monkeypatch.setattr(markdown, "MAX_INPUT", 10)
        request_id = world.create(assign_to="responder@example.com", content="Longer than ten characters")["id"]
        request = HITLRequest.objects.get(pk=request_id)
        assert "could not be rendered" in request.notification_error
        event = (
            AuditEvent.objects.filter(target_id=str(request.pk), event_type="notification.failed")
            .order_by("pk")
            .first()
        )
        # Sync mode runs every retry at once (hitl.tasks.NOTIFY_FAILURE_BACKOFF): one event per try.
        assert event is not None and request.notification_failures == 1  # the first try; retries wait (outbox)
        assert "could not be rendered" in event.data["error"]
        assert not [m for m in mail.outbox if "responder@example.com" in m.to]
