"""Security headers and the Content-Security-Policy on every page (SPEC §17): the reviewer pages, the
admin, the API docs, the API and error pages; and no page relies on what the policy forbids (inline
scripts, inline event handlers)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from hitl.models import HITLRequest
from tests.support.base import World

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


@pytest.fixture
def admin(world: World) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def assert_protected(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


class TestEveryPageIsProtected:
    def test_the_reviewer_pages(self, world: World) -> None:
        created = world.create(message="Ship it?", emit_options=["approved", "rejected"])
        client = Client()
        client.force_login(world.manager)
        for path in ("/", f"/requests/{created['id']}/", "/accounts/login/", "/no-such-page/"):
            response = client.get(path)
            assert response.status_code in (200, 302, 404), path
            assert_protected(response)

    def test_the_admin(self, admin: Client, world: World) -> None:
        world.create(message="Ship it?", emit_options=["approved"])
        request = HITLRequest.objects.get()
        for path in ("/admin/", "/admin/hitl/hitlrequest/", f"/admin/hitl/hitlrequest/{request.pk}/change/"):
            response = admin.get(path)
            assert response.status_code == 200, path
            assert_protected(response)
            html = response.content.decode()
            assert INLINE_SCRIPT.findall(html) == [] and INLINE_HANDLER.findall(html) == [], path

    def test_the_api_docs_load_their_script_from_us(self, world: World) -> None:
        client = Client()
        client.force_login(world.manager)
        page = client.get("/api/docs/")
        assert page.status_code == 200
        assert_protected(page)
        html = page.content.decode()
        assert INLINE_SCRIPT.findall(html) == []
        init = re.search(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', html)
        assert init, "the init script comes from the docs URL"
        script = client.get(init.group(1).replace("&amp;", "&"))
        assert script.status_code == 200 and b"SwaggerUIBundle" in script.content

    def test_the_api(self, world: World) -> None:
        for response in (Client().get("/api/v1/version/"), Client().get("/api/v1/requests/")):
            assert_protected(response)
