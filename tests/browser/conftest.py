"""Real-browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's live
server. One browser for the whole session, a fresh context (cookies, storage) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

CHROMIUM = os.environ.get("HITL_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing but the live server resolves: a page that tried a CDN or a remote image would fail.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
SCREENSHOTS = Path(django_settings.BASE_DIR) / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module (a second or so to start), closed before the next module runs."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run tests/browser/install-chromium.sh (make test does)")
    # Playwright's sync API keeps an asyncio loop on this thread while it runs, which trips Django's
    # async-safety check; the ORM calls these tests make between browser steps are plain sync code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def site(live_server: Any, settings: Any) -> str:
    """The live server's URL, which is also HITL_BASE_URL: links in emails point at it."""
    settings.HITL_BASE_URL = live_server.url
    return str(live_server.url)


class Pages:
    """New pages at a given viewport; every request a page makes must go to the live server."""

    def __init__(self, browser: Any, site: str):
        self.browser = browser
        self.site = site
        self.contexts: list[Any] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []

    def new(self, viewport: dict[str, int] = DESKTOP) -> Any:
        context = self.browser.new_context(viewport=viewport, device_scale_factor=1)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        host = urlsplit(self.site).netloc
        page.on("request", lambda r: None if urlsplit(r.url).netloc == host else self.foreign.append(r.url))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._refuse_dialog)
        return page

    def _refuse_dialog(self, dialog: Any) -> None:
        self.errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Any, site: str) -> Iterator[Pages]:
    opened = Pages(browser, site)
    yield opened
    opened.close()
    assert not opened.foreign, f"pages reached beyond the server: {opened.foreign}"
    assert not opened.errors, f"script errors or dialogs: {opened.errors}"


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, site: str, username: str, password: str = "pw", next_path: str = "/inbox/") -> None:
    page.goto(f"{site}{next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}{next_path}")
