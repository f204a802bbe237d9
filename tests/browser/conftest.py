"""Browser tests: Playwright drives Debian's Chromium against the real gunicorn `server`.

`make test` installs what these need (apt's `chromium`, then `npm ci` here for axe-core);
Playwright never downloads a browser of its own. A missing browser or axe-core fails the
tests, never skips them: a green run must mean the pages were really looked at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.server.conftest import Server, server  # noqa: F401  (the fixture, re-exported)
from tests.servers import Mailbox, wait_for

CHROMIUM = Path("/usr/bin/chromium")
AXE_SOURCE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root on CI: Chromium refuses its sandbox there
    "--disable-gpu",
    "--disable-background-networking",  # the machine's closed network refuses these calls
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 10_000
PUBLIC_BASE_URL = "https://auth.example"  # mailed links name it; the tests open their path


def mail_env(smtp_port: int) -> dict[str, str]:
    """A server environment that mails through the test's SMTP server on `smtp_port` (chosen
    before the server starts, as its environment is fixed then), swept every second."""
    return {
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "OUTBOX_SWEEP_SECONDS": "1",
    }


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


def mailed_path(mailbox: Mailbox, address: str, path: str, count: int = 1) -> str:
    """The path and query of the `path?token=…` link in the newest mail to `address` that has
    one, once `count` such mails have arrived (the mails of one request may come in any
    order, so they are told apart by their link rather than their rank)."""
    pattern = re.compile(rf"{re.escape(PUBLIC_BASE_URL + path)}\?token=[\w-]+")

    def links() -> list[str]:
        found = [pattern.search(Mailbox.text(m)) for m in mailbox.to(address)]
        return [match.group(0) for match in found if match is not None]

    def newest() -> str | None:
        found = links()
        return found[-1] if len(found) >= count else None

    parts = urlsplit(wait_for(newest))
    return f"{parts.path}?{parts.query}"


def mail_saying(mailbox: Mailbox, address: str, words: str) -> str:
    """The text of the first mail to `address` that contains `words`, once it has arrived."""
    return wait_for(
        lambda: next((t for t in map(Mailbox.text, mailbox.to(address)) if words in t), None)
    )
