"""Fixtures for the web app's tests: a headless Debian Chromium driven by Playwright.

Browser tests are marked ``browser``; they run whenever /usr/bin/chromium exists (they never
download a browser) and are skipped only where it does not. Screenshots go to
``test-artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# page actions are still plain synchronous calls, so Django's async-safety guard must step aside.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"

# Every XSS payload calls this; the page defines it as a trap that records the call.
XSS_TRAP = """
window.__xssCalls = [];
window.__xss = (tag) => {
  window.__xssCalls.push(String(tag));
  if (window.__xssReport) window.__xssReport(String(tag));
};
window.alert = (m) => window.__xss('alert:' + m);
"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        # In CI a missing browser is a failure, never a silent skip (make test installs it there).
        if os.environ.get("ARBITER_REQUIRE_POSTGRES") == "1":
            pytest.fail("Debian's Chromium is missing at /usr/bin/chromium (apt-get install chromium)")
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageErrors(list):
    """Console errors and uncaught exceptions seen by a page (a test asserts it stays empty)."""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = PageErrors()
    page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: page.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    yield page
    context.close()


@pytest.fixture
def shot() -> Any:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        # Layout sanity on every page we photograph: nothing pushes the page wider than the window.
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{name}: the page is {widths[0]}px wide in a {widths[1]}px window"
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def sign_in(page: Any, base_url: str, username: str, password: str = "pw-123456") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
