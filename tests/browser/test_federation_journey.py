"""Signing in with an OpenID Connect provider in a real browser (Chromium) on real gunicorn,
against a real provider (Node's oidc-provider, tests/oidc_peer.py): a newcomer's sign-up by the
"Log in with Test IdP" button and the way back to the same account after logging out, an
account holder connecting and disconnecting an identity on the security page, the refusal of an
identity whose address already has an account, and axe on the pages with the provider's forms
(docs/federation.md).

One provider and one server serve the whole module (federation_fixtures.py). The pages are
opened as http://localhost:PORT, the address the provider's client knows for the way back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import TIMEOUT_MS
from tests.browser.federation_fixtures import (
    DISPLAY_NAME,
    federation_server,
    leave_with_button,
    whoami,
)
from tests.browser.test_accessibility import look_at
from tests.browser.test_passkey_journey import by_name, log_out
from tests.conftest import PASSWORD
from tests.oidc_peer import OidcProvider
from tests.server.conftest import Server, sign_up

LOG_IN_WITH = f"Log in with {DISPLAY_NAME}"
CONNECT = f"Connect {DISPLAY_NAME}"
SECURITY = "/settings/security"
CALLBACK = "/login/with/idp/callback"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, OidcProvider]]:
    with federation_server(tmp_path_factory) as started:
        yield started


@pytest.fixture(scope="module")
def server(federation: tuple[Server, OidcProvider]) -> Server:
    """This module's gunicorn, configured with the provider (replaces conftest's `server`)."""
    return federation[0]


@pytest.fixture(scope="module")
def provider(federation: tuple[Server, OidcProvider]) -> OidcProvider:
    return federation[1]


@pytest.fixture
def context(new_context: Any, server: Server) -> BrowserContext:
    """As tests/browser/conftest.py's, on http://localhost:PORT."""
    made: BrowserContext = new_context(base_url=by_name(server))
    made.set_default_timeout(TIMEOUT_MS)
    return made


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AUTHAPP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fresh_login() -> str:
    """A login name at the provider no test used before (its address: `<login>@example.com`)."""
    return f"fed-{uuid.uuid4().hex[:10]}"


def at_authapp(page: Page, server: Server, path: str) -> None:
    assert page.url.startswith(by_name(server) + "/"), f"not back at authapp: {page.url}"
    assert urlsplit(page.url).path == path


def log_in_with_provider(page: Page, provider: OidcProvider, login: str) -> int:
    """/login's provider button, the provider's pages as `login`; its forms filled."""
    page.goto("/login")
    return leave_with_button(page, LOG_IN_WITH, provider, login)


def log_in_with_password(page: Page, email: str) -> None:
    """conftest's log_in_through_form, whose `name="Log in"` also matches "Log in with Test
    IdP" (Playwright's strict mode refuses two buttons): the exact name here."""
    page.goto("/login")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_test_id("who")).to_have_text(email)


def logged_in_as(page: Page, email: str) -> str:
    """The account the browser's cookies log in (its id), checked to have `email`."""
    status, body = whoami(page)
    assert status == 200, body
    assert body["user"]["email"] == email
    return str(body["user"]["id"])


def test_a_newcomer_signs_up_with_the_provider_button(
    page: Page, server: Server, provider: OidcProvider
) -> None:
    login = fresh_login()
    page.goto("/login")
    assert whoami(page)[0] == 401

    filled = log_in_with_provider(page, provider, login)

    assert filled == 1, "the provider's login form was not shown"
    at_authapp(page, server, "/")
    expect(page.get_by_test_id("who")).to_have_text(f"{login}@example.com")
    logged_in_as(page, f"{login}@example.com")


def test_the_same_browser_logs_out_and_back_in_to_the_same_account(
    page: Page, server: Server, provider: OidcProvider
) -> None:
    login = fresh_login()
    email = f"{login}@example.com"
    log_in_with_provider(page, provider, login)
    first = logged_in_as(page, email)

    log_out(page)
    assert whoami(page)[0] == 401
    log_in_with_provider(page, provider, login)

    at_authapp(page, server, "/")
    expect(page.get_by_test_id("who")).to_have_text(email)
    assert logged_in_as(page, email) == first


def connect_on_security_page(page: Page, provider: OidcProvider, login: str) -> None:
    """The security page's "Connect Test IdP" with the password, then the provider as `login`."""
    page.goto(SECURITY)
    form = page.get_by_test_id("connect-idp")
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    assert leave_with_button(page, CONNECT, provider, login) == 1


def test_an_account_holder_connects_and_disconnects_an_identity(
    page: Page, server: Server, provider: OidcProvider
) -> None:
    owner = sign_up(server)["user"]
    log_in_with_password(page, owner["email"])
    login = fresh_login()

    connect_on_security_page(page, provider, login)

    at_authapp(page, server, SECURITY)
    expect(page.get_by_text(f"{DISPLAY_NAME} connected")).to_be_visible()
    rows = page.get_by_test_id("identities").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(DISPLAY_NAME)
    expect(rows.first).to_contain_text(f"{login}@example.com")
    assert logged_in_as(page, owner["email"]) == owner["id"]  # still the owner's session

    with page.expect_navigation():
        rows.first.get_by_role("button", name="Disconnect").click()

    at_authapp(page, server, SECURITY)
    expect(page.get_by_text(f"{DISPLAY_NAME} disconnected")).to_be_visible()
    expect(page.get_by_test_id("identities")).to_have_count(0)
    expect(page.get_by_role("button", name=CONNECT, exact=True)).to_be_visible()


def test_an_address_with_an_account_is_refused_on_the_login_page(
    page: Page, server: Server, provider: OidcProvider
) -> None:
    login = fresh_login()
    sign_up(server, email=f"{login}@example.com")
    page.goto("/login")

    with page.expect_response(lambda r: urlsplit(r.url).path == CALLBACK) as back:
        leave_with_button(page, LOG_IN_WITH, provider, login)

    assert back.value.status == 409
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(
        f"connect {DISPLAY_NAME} on the security page"
    )
    assert whoami(page)[0] == 401
    expect(page.get_by_test_id("who")).to_have_count(0)


def test_the_federation_pages_have_no_serious_axe_violation(
    page: Page, server: Server, provider: OidcProvider, axe_source: str, screenshots: Path
) -> None:
    page.goto("/login")
    expect(page.get_by_role("button", name=LOG_IN_WITH, exact=True)).to_be_visible()
    look_at(page, "login-provider-button", axe_source, screenshots)

    owner = sign_up(server)["user"]
    log_in_with_password(page, owner["email"])
    connect_on_security_page(page, provider, fresh_login())
    expect(page.get_by_test_id("identities")).to_be_visible()
    expect(page.get_by_role("button", name=CONNECT, exact=True)).to_be_visible()
    look_at(page, "settings-security-identity", axe_source, screenshots)
