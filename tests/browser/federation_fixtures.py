"""A real OpenID Connect provider (tests/oidc_peer.py) and a gunicorn `server` configured to
sign in with it as `idp` ("Test IdP"), for the browser's federation journeys; and the person's
walk through the provider's own pages in Chromium.

The provider must know the redirect URI when it starts, and the server the provider's issuer:
the server's port is chosen first, the provider started with a client whose redirect URI is
http://localhost:PORT/login/with/idp/callback (outside production authapp builds it from the
address the page was opened with), then the server on PORT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import worker_name
from tests.oidc_peer import PASSWORD as PROVIDER_PASSWORD
from tests.oidc_peer import OidcProvider, oidc_provider
from tests.server.conftest import Server, running_server
from tests.servers import free_port

CLIENT_ID, CLIENT_SECRET = "authapp-browser", "a client secret of at least thirty-two characters"
DISPLAY_NAME = "Test IdP"
MAX_STEPS = 5  # the provider's forms in one sign-in (its login form; a consent, were it asked)


@contextmanager
def federation_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, OidcProvider]]:
    """The provider, then gunicorn on the port its client's redirect URI names (the server's
    own `base_url` says 127.0.0.1: open its pages as localhost, see `by_name`)."""
    port = free_port()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"http://localhost:{port}/login/with/idp/callback"],
    }
    with oidc_provider([client]) as provider:
        configured = {
            "idp": {
                "issuer": provider.issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "display_name": DISPLAY_NAME,
            }
        }
        extra = {"FEDERATION_PROVIDERS": json.dumps(configured)}
        database = worker_name("live_browser_federation")
        with running_server(database, extra, tmp_path_factory, port=port) as server:
            yield server, provider


def at_provider(page: Page, provider: OidcProvider) -> bool:
    return page.url.startswith(provider.issuer + "/")


def leave_with_button(page: Page, button: str, provider: OidcProvider, login: str) -> int:
    """Click `button` (a form posting to authapp, which sends the browser to the provider),
    then go through the provider's pages as `login` until the browser is back at authapp;
    how many of the provider's forms were filled (none when its session is still alive)."""
    leave(page, button)
    steps = 0
    while at_provider(page, provider):
        steps += 1
        assert steps <= MAX_STEPS, f"still at the provider after {MAX_STEPS} forms: {page.url}"
        submit_provider_form(page, login)
    return steps


def leave(page: Page, button: str) -> None:
    """Click `button` and wait for the page it leads to; the test fails saying why when the
    browser refuses to go (Chromium applies the page's CSP `form-action` to the redirect that
    answers the form too, and reports it on the console)."""
    said: list[str] = []

    def note(message: ConsoleMessage) -> None:
        said.append(message.text)

    page.on("console", note)
    try:
        with page.expect_navigation():
            page.get_by_role("button", name=button, exact=True).click()
        # authapp's leaving page, whose refresh goes on to the provider (federation_pages.leave)
        page.wait_for_url(lambda url: not url.endswith("/continue"))
        page.wait_for_load_state()
    except PlaywrightError as exc:
        why = csp_reports(page, said) or [exc.message]
        raise AssertionError(f"{button!r} did not leave {page.url}: {why}") from None
    finally:
        page.remove_listener("console", note)


def csp_reports(page: Page, said: list[str]) -> list[str]:
    """The console's CSP reports, once one has come (it may follow the aborted navigation's
    error by a moment), or none after a second."""
    for _ in range(10):
        reports = [text for text in said if "Content Security Policy" in text]
        if reports:
            return reports
        page.wait_for_timeout(100)
    return []


def submit_provider_form(page: Page, login: str) -> None:
    """The provider's page as a person fills it: its login form (login name, any password),
    or its consent form as it is."""
    form = page.locator("form").first
    login_field = form.locator("input[name=login]")
    if login_field.count():
        login_field.fill(login)
        form.locator("input[name=password]").fill(PROVIDER_PASSWORD)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def whoami(page: Page) -> tuple[int, Any]:
    """GET /api/v1/auth/me from the page's own script (the browser's cookies): status, body."""
    answer: dict[str, Any] = page.evaluate(
        """() => fetch('/api/v1/auth/me', {credentials: 'same-origin'})
              .then(async r => ({status: r.status, body: await r.json().catch(() => null)}))"""
    )
    return int(answer["status"]), answer["body"]
