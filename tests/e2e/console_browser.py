"""The browser the console tests drive: Debian's headless Chromium through Playwright (no
browser download), one for the console's tests, a fresh context per test.

Every test fails on any `console.error` or uncaught exception in the page, and on any request
that leaves this machine: the console and `/docs` must work without internet. With
`CONSOLE_SCREENSHOTS=<folder>` the tests save their screenshots there (the README's come
from `CONSOLE_SCREENSHOTS=docs/console`); without it nothing is written, so `make test`
leaves the tree clean.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from conftest import System

LAPTOP: ViewportSize = {"width": 1366, "height": 860}
SMALL_LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed: apt-get install -y chromium (.ci/run does)"
        )
    return path


@pytest.fixture(scope="module")
def browser(system: System) -> Iterator[Browser]:
    """One browser for the console's tests. Module-scoped, and after `system`: Playwright's
    sync API keeps an event loop running in this thread while it is open, so `asyncio.run`
    (the stack's fixtures, other modules' helpers) must not come while it is."""
    # A live page refreshes every 2.5 s; on a loaded CI machine a refresh and the run behind it
    # can outlast the 5 s Playwright waits by default. A deadline, never a pass/fail timing.
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path())
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Console:
    """A page of the console under test, and what went wrong in it."""

    page: Page
    base_url: str
    key: str
    problems: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect_http_error(self, status: int, path: str) -> None:
        """The test provokes this answer on purpose: Chromium logs every non-2xx answer as a
        console error ("Failed to load resource"), which would fail the test otherwise."""
        self.expected.append(f"status of {status} ")
        self.expected.append(path)

    def unexpected(self) -> list[str]:
        pairs = list(zip(self.expected[::2], self.expected[1::2], strict=True))
        return [p for p in self.problems if not any(a in p and b in p for a, b in pairs)]

    def open(self, route: str = "") -> None:
        """The console at `#<route>` (e.g. `/runs/run_…`), signed in with the key."""
        self.page.goto(f"{self.base_url}/console/#{route}")
        if self.page.locator("#api-key").is_visible():
            self.sign_in()

    def sign_in(self, key: str | None = None) -> None:
        """Enter `key` (the test tenant's by default) in the key form; with the right key,
        until the console shows its navigation."""
        self.page.locator("#api-key").fill(key or self.key)
        self.page.get_by_role("button", name="Open the console").click()
        if key is None:
            self.page.get_by_role("navigation", name="Main").wait_for()

    def screenshot(self, name: str, *, full_page: bool = True) -> None:
        folder = os.environ.get("CONSOLE_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=Path(folder) / f"{name}.png", full_page=full_page)


@pytest.fixture
def console(browser: Browser, system: System) -> Iterator[Console]:
    """A fresh browser context (empty sessionStorage) on the tests' ingress."""
    context = browser.new_context(viewport=LAPTOP, base_url=system.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    c = Console(page=page, base_url=system.url, key=system.key)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            c.problems.append(f"console.error: {message.text} ({message.location.get('url')})")

    def on_page_error(error: Error) -> None:
        c.problems.append(f"uncaught in the page: {error}")

    def offline_only(route: Route) -> None:
        # There is no internet for a user on a plane: a request elsewhere is a defect.
        url = route.request.url
        c.requested.append(url)
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            c.problems.append(f"request leaving the machine: {url}")
            route.abort()

    context.route("**/*", offline_only)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    try:
        yield c
    finally:
        context.close()
    assert not c.unexpected(), "\n".join(c.unexpected())
