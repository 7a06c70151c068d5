"""The pages the Content-Security-Policy could break, in Chromium (SPEC §17): the Swagger UI of
/api/docs/ renders and runs a call, the admin's scripts work, and the browser reports no violation."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

import hitl
from tests.browser.conftest import DESKTOP, Pages, screenshot, sign_in
from tests.support.base import build_world

pytestmark = pytest.mark.django_db(transaction=True)


def watch_violations(page: Any) -> list[str]:
    """Chromium logs every blocked script, style or connection to the console."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


class TestUnderTheContentSecurityPolicy:
    def test_the_api_docs_render_and_try_a_call(self, pages: Pages, site: str) -> None:
        build_world()
        page = pages.new(DESKTOP)
        violations = watch_violations(page)
        sign_in(page, site, "manager")
        page.goto(f"{site}/api/docs/")
        page.locator(".swagger-ui .info .title").filter(has_text="HITL server API").wait_for()
        operation = page.locator("#operations-v1-version")
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_role("button", name="Execute").click()
        body = operation.locator(".responses-wrapper .live-responses-table .microlight").first
        body.wait_for()
        assert hitl.__version__ in body.inner_text()
        screenshot(page, "api-docs-under-csp")
        assert violations == []

    def test_the_admin_scripts_run(self, pages: Pages, site: str) -> None:
        get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        page = pages.new(DESKTOP)
        violations = watch_violations(page)
        sign_in(page, site, "root")
        page.goto(f"{site}/admin/auth/user/")
        # The action bar's "select all" is the admin's actions.js at work.
        page.locator("#action-toggle").check()
        assert page.locator("input.action-select").first.is_checked()
        page.goto(f"{site}/admin/auth/user/add/")
        page.locator("#id_username").wait_for()
        assert violations == []
