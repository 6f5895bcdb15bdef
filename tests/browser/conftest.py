"""Fixtures for the browser tests: the built site over loopback HTTP, Debian's Chromium, a page.

See tests/_browser.py for how the browser is started and what a page records.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _browser import CHROMIUM, CHROMIUM_ARGS, SiteServer, Watched, serve_directory, watch
from _docs_site import BuiltSite
from playwright.sync_api import Browser, Playwright, sync_playwright


@pytest.fixture(scope="session")
def site_server(built_site: BuiltSite) -> Iterator[SiteServer]:
    """The built site on a free loopback port, for the whole session."""
    with serve_directory(built_site.path) as served:
        yield served


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API (these tests are plain sync functions: no event loop runs here).

    Module-scoped: its own event loop is closed before the suite's asyncio tests run on.
    """
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium with every non-loopback host blocked."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it); "
            "never `playwright install`"
        )
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def light_page(browser: Browser) -> Iterator[Watched]:
    """A fresh page in a new context (light colour scheme, 1280x900), recorded from the start."""
    context = browser.new_context(color_scheme="light", viewport={"width": 1280, "height": 900})
    try:
        yield watch(context.new_page())
    finally:
        context.close()
