"""Browser tests: Playwright drives Debian's Chromium against the real gunicorn `server`.

`make test` installs what these need (apt's `chromium`, then `npm ci` here for axe-core);
Playwright never downloads a browser of its own. A missing browser or axe-core fails the
tests, never skips them: a green run must mean the pages were really looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.server.conftest import Server, server  # noqa: F401  (the fixture, re-exported)

CHROMIUM = Path("/usr/bin/chromium")
AXE_SOURCE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root on CI: Chromium refuses its sandbox there
    "--disable-gpu",
    "--disable-background-networking",  # the machine's closed network refuses these calls
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(apt-get install -y chromium)",
            pytrace=False,
        )
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-playwright 0.10.0's fallback `base_url`, an instance-method fixture
    that pytest 9 deprecates (PytestRemovedIn10Warning, an error under filterwarnings=error);
    `context` below sets each module's own server as the base URL instead."""
    return None


@pytest.fixture
def context(new_context: Any, server: Server) -> BrowserContext:  # noqa: F811
    """pytest-playwright's context, with relative URLs on this module's gunicorn."""
    made: BrowserContext = new_context(base_url=server.base_url)
    made.set_default_timeout(TIMEOUT_MS)
    return made


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE_SOURCE.is_file():
        pytest.fail(
            f"{AXE_SOURCE} is missing: `make test` runs "
            "`npm ci --prefix tests/browser --no-audit --no-fund`",
            pytrace=False,
        )
    return AXE_SOURCE.read_text()


def log_in_through_form(page: Page, login: str, password: str) -> None:
    """The login page, filled by its labels; waits for the page it lands on."""
    page.goto("/login")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
