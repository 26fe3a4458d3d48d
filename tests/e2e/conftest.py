"""Fixtures for browser tests: the app served by uvicorn, a projector, and Chromium.

`read_settings`, `run_projector` and `store` are the shared read-side fixtures (an index
alias and a Redis namespace of the test's own, an in-process projector).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Browser, Page, async_playwright

from app.kernel.settings import Settings
from app.main import create_app
from tests.helpers.live import serve
from tests.projection.conftest import RunProjector

CHROMIUM = "/usr/bin/chromium"  # Debian's package (infra/ensure-tools.sh installs it)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings


@pytest.fixture
async def live_server(read_settings: Settings,
                      run_projector: RunProjector) -> AsyncIterator[LiveServer]:
    """The whole app on a free loopback port, with a projector, in this event loop."""
    async with run_projector(), serve(create_app(read_settings)) as url:
        yield LiveServer(url, read_settings)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium driven by Playwright (no downloaded browser needed)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: run infra/ensure-tools.sh as root")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Browsing:
    page: Page
    errors: list[str] = field(default_factory=list)  # uncaught errors in the page's scripts
    console: list[str] = field(default_factory=list)  # console errors, for failure messages


@pytest.fixture
async def browsing(browser: Browser, live_server: LiveServer) -> AsyncIterator[Browsing]:
    """A fresh laptop-sized page on the live server (closed before the server stops)."""
    context = await browser.new_context(viewport={"width": 1366, "height": 768},
                                        base_url=live_server.url)
    page = await context.new_page()
    browsing = Browsing(page)
    page.on("pageerror", lambda error: browsing.errors.append(str(error)))
    page.on("console", lambda message: browsing.console.append(message.text)
            if message.type == "error" else None)
    try:
        yield browsing
    finally:
        await context.close()
