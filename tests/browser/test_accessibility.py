"""axe-core (tests/browser/node_modules, pinned in package-lock.json) on every browser page, as
the person sees it in Chromium: no `serious` or `critical` violation anywhere. Each page is
also saved as a full-page screenshot in $AUTHAPP_SCREENSHOTS (else the test's tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import TIMEOUT_MS, log_in_through_form, mail_env, mailed_path
from tests.browser.test_passkey_journey import NO_AUTOFILL, Authenticator, add_passkey, by_name
from tests.conftest import PASSWORD
from tests.server.conftest import Server, bearer, request_json, sign_up, unique
from tests.servers import free_port, smtp_server

BLOCKING = ("serious", "critical")
ANONYMOUS_PAGES = {
    "home": "/",
    "login": "/login",
    "signup": "/signup",
    "forgot-password": "/forgot-password",
    "reset-password": "/reset-password?token=from-the-mail",
    "verify-email": "/verify-email?token=from-the-mail",
    "verify-email-resend": "/verify-email/resend",
    "invitation-invalid": "/invitations/accept?token=from-the-mail",
}
OWNER_PAGES = {
    "home-logged-in": "/",
    "settings-profile": "/settings/profile",
    "settings-password": "/settings/password",
    "settings-sessions": "/settings/sessions",
    "settings-api-keys": "/settings/api-keys",
    "settings-members": "/settings/members",
    "settings-roles": "/settings/roles",
    "settings-organizations": "/settings/organizations",
    "settings-invitations": "/settings/invitations",
}
# axe.min.js defines `window.axe`; page.evaluate runs it through the DevTools protocol, which
# the page's CSP (no inline scripts) does not govern, unlike a <script> tag would be.
RUN_AXE = "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
SMTP_PORT = free_port()  # the mailing server's, fixed before it starts (its environment)
MAILING = mail_env(SMTP_PORT)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AUTHAPP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def owner_cookies(browser: Browser, server: Server) -> list[Any]:
    """The owner of a new organization with an API key and a custom role, logged in once
    through the form; each test's fresh browser context gets these cookies."""
    account = sign_up(
        server,
        confirmed=True,
        organization_name=unique("Acme "),
        full_name="Grace Hopper",
        username=unique("grace_"),
    )
    token = account["access_token"]
    for path, body in (
        ("/api/v1/settings/api-keys", {"name": "deploy bot", "scopes": ["users:read"]}),
        ("/api/v1/settings/roles", {"name": "auditor", "permissions": ["audit:read"]}),
    ):
        status, _, answer = request_json(server, "POST", path, body, headers=bearer(token))
        assert status == 201, answer
    context = browser.new_context(base_url=server.base_url)
    try:
        page = context.new_page()
        log_in_through_form(page, account["user"]["email"], PASSWORD)
        expect(page.get_by_test_id("who")).to_have_text(account["user"]["email"])
        return context.cookies()
    finally:
        context.close()


def blocking_violations(page: Page, axe_source: str) -> list[dict[str, Any]]:
    page.evaluate(axe_source)
    violations: list[dict[str, Any]] = page.evaluate(RUN_AXE)
    return [v for v in violations if v["impact"] in BLOCKING]


def describe(violations: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [
                    {"target": n["target"], "html": n["html"][:200], "why": n["failureSummary"]}
                    for n in v["nodes"]
                ],
            }
            for v in violations
        ],
        indent=2,
    )


def look_at(page: Page, name: str, axe_source: str, screenshots: Path) -> None:
    """Screenshot, then axe; closed <details> (the roles' edit forms) are opened first, as axe
    skips what is hidden."""
    page.locator("details").evaluate_all("els => els.forEach(e => { e.open = true; })")
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)
    violations = blocking_violations(page, axe_source)
    assert violations == [], f"{name} ({page.url}):\n{describe(violations)}"


@pytest.mark.parametrize(("name", "path"), ANONYMOUS_PAGES.items())
def test_anonymous_page_has_no_serious_axe_violation(
    page: Page, axe_source: str, screenshots: Path, name: str, path: str
) -> None:
    page.goto(path)

    look_at(page, name, axe_source, screenshots)


@pytest.mark.parametrize(("name", "path"), OWNER_PAGES.items())
def test_owner_page_has_no_serious_axe_violation(
    page: Page,
    owner_cookies: list[Any],
    axe_source: str,
    screenshots: Path,
    name: str,
    path: str,
) -> None:
    page.context.add_cookies(owner_cookies)

    page.goto(path)

    assert page.url.endswith(path), "the owner's cookies did not log the page in"
    look_at(page, name, axe_source, screenshots)


def test_sign_up_page_with_errors_has_no_serious_axe_violation(
    page: Page, axe_source: str, screenshots: Path
) -> None:
    """The re-rendered form: alert box, messages tied to their fields, aria-invalid."""
    page.goto("/signup")
    page.get_by_label("Email", exact=True).fill("not an email")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Username (optional)").fill("x")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign up").click()

    assert answer.value.status == 422
    invalid = page.locator("[aria-invalid=true]")
    expect(invalid).to_have_count(2)
    assert invalid.evaluate_all("els => els.map(e => e.id)") == ["email", "username"]
    look_at(page, "signup-errors", axe_source, screenshots)


def test_login_page_with_an_error_has_no_serious_axe_violation(
    page: Page, axe_source: str, screenshots: Path
) -> None:
    page.goto("/login")
    page.get_by_label("Email or username").fill(f"{unique('nobody.')}@example.com")
    page.get_by_label("Password", exact=True).fill("not the passphrase at all, sorry")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()

    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_be_visible()
    look_at(page, "login-error", axe_source, screenshots)


def test_email_change_error_on_the_profile_page_has_no_serious_axe_violation(
    page: Page, owner_cookies: list[Any], axe_source: str, screenshots: Path
) -> None:
    """The profile page re-rendered by its second form (POST /settings/email): the alert box
    above that form, the wrong password marked."""
    page.context.add_cookies(owner_cookies)
    page.goto("/settings/profile")
    page.get_by_label("New email address").fill(f"{unique('elsewhere.')}@example.com")
    page.get_by_label("Current password").fill("not the passphrase at all, sorry")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Send the confirmation link").click()

    assert answer.value.status == 422
    expect(page.get_by_role("alert")).to_have_text("The current password is incorrect.")
    invalid = page.locator("[aria-invalid=true]")
    expect(invalid).to_have_count(1)
    assert invalid.evaluate_all("els => els.map(e => e.id)") == ["password"]
    look_at(page, "settings-profile-email-error", axe_source, screenshots)


def test_resend_verification_page_once_sent_has_no_serious_axe_violation(
    page: Page, axe_source: str, screenshots: Path
) -> None:
    page.goto("/verify-email/resend")
    page.get_by_label("Email").fill(f"{unique('nobody.')}@example.com")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the link").click()

    expect(page.get_by_role("status")).to_contain_text("a new link is on its way")
    expect(page.get_by_label("Email")).to_have_count(0)
    look_at(page, "verify-email-resend-sent", axe_source, screenshots)


@pytest.mark.parametrize("server", [MAILING], indirect=True)
def test_confirm_email_change_page_from_a_real_mail_has_no_serious_axe_violation(
    page: Page, server: Server, axe_source: str, screenshots: Path
) -> None:
    """The page of the link mailed by a real change request (POST /api/v1/settings/email),
    before its button, after it (the login page with its notice), and with the spent link."""
    account = sign_up(server)
    new = f"{unique('moved.')}@example.com"
    with smtp_server(SMTP_PORT) as smtp:
        status, _, body = request_json(
            server,
            "POST",
            "/api/v1/settings/email",
            {"new_email": new, "password": PASSWORD},
            headers=bearer(account["access_token"]),
        )
        assert status == 202, body
        link = mailed_path(smtp.mailbox, new, "/confirm-email-change")

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your new email address")
    look_at(page, "confirm-email-change", axe_source, screenshots)

    with page.expect_navigation():
        page.get_by_role("button", name="Confirm my new email address").click()
    assert page.url == f"{server.base_url}/login"
    expect(page.get_by_role("status")).to_contain_text("Your email address is changed")
    look_at(page, "login-after-email-change", axe_source, screenshots)

    page.goto(link)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Confirm my new email address").click()
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_be_visible()
    look_at(page, "confirm-email-change-spent", axe_source, screenshots)


@pytest.mark.parametrize("server", [MAILING], indirect=True)
def test_invitation_accept_page_from_a_real_mail_has_no_serious_axe_violation(
    page: Page, server: Server, axe_source: str, screenshots: Path
) -> None:
    """The sign-up form of a link mailed by a real invitation, before and after a refused
    password."""
    owner = sign_up(server, confirmed=True, organization_name=unique("Orbit "))
    invited = f"{unique('invited.')}@example.com"
    with smtp_server(SMTP_PORT) as smtp:
        status, _, body = request_json(
            server,
            "POST",
            "/api/v1/settings/invitations",
            {"email": invited, "roles": ["member"]},
            headers=bearer(owner["access_token"]),
        )
        assert status == 201, body
        link = mailed_path(smtp.mailbox, invited, "/invitations/accept")

    page.goto(link)
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    look_at(page, "invitation-accept", axe_source, screenshots)

    page.get_by_label("Password", exact=True).fill("short")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create my account and join").click()
    assert answer.value.status == 422
    expect(page.get_by_role("alert")).to_be_visible()
    look_at(page, "invitation-accept-refused", axe_source, screenshots)


@pytest.mark.parametrize("server", [{"SIGNUP_MODE": "closed"}], indirect=True)
def test_closed_sign_up_page_has_no_serious_axe_violation(
    page: Page, axe_source: str, screenshots: Path
) -> None:
    page.goto("/signup")

    expect(page.get_by_test_id("signup-closed")).to_have_text(
        "Sign-up is closed: an administrator creates accounts."
    )
    expect(page.locator("form input:not([type=hidden])")).to_have_count(0)
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)
    look_at(page, "signup-closed", axe_source, screenshots)


@pytest.mark.parametrize("server", [{"REQUIRE_VERIFIED_EMAIL": "true"}], indirect=True)
def test_unverified_sign_up_and_login_pages_have_no_serious_axe_violation(
    page: Page, axe_source: str, screenshots: Path
) -> None:
    """REQUIRE_VERIFIED_EMAIL: the sign-up's "check your mail", then the refused login with
    its link to the resend page."""
    email = f"{unique('unverified.')}@example.com"
    page.goto("/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_test_id("check-your-mail")).to_be_visible()
    look_at(page, "signup-check-your-mail", axe_source, screenshots)

    page.goto("/login")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 403
    expect(page.get_by_role("alert").get_by_role("link")).to_have_attribute(
        "href", "/verify-email/resend"
    )
    look_at(page, "login-unverified", axe_source, screenshots)


def test_passkey_login_page_has_no_serious_axe_violation(
    new_context: Any, server: Server, axe_source: str, screenshots: Path
) -> None:
    """/login by its domain name (localhost): the passkey button is there (WebAuthn refuses
    an IP address as RP id, so the pages at 127.0.0.1 have none)."""
    context: BrowserContext = new_context(base_url=by_name(server))
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.add_init_script(NO_AUTOFILL)
    page.goto("/login")

    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    look_at(page, "login-passkey", axe_source, screenshots)


def test_security_page_with_a_passkey_has_no_serious_axe_violation(
    new_context: Any, server: Server, axe_source: str, screenshots: Path
) -> None:
    """/settings/security by its domain name with a passkey added (Chromium's virtual
    authenticator): the table with its rename and remove forms, then the refused removal of
    the last passkey without the password."""
    context: BrowserContext = new_context(base_url=by_name(server))
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    Authenticator(page)
    log_in_through_form(page, sign_up(server, confirmed=True)["user"]["email"], PASSWORD)
    add_passkey(page, "Work laptop")

    expect(page.get_by_test_id("passkeys")).to_be_visible()
    expect(page.get_by_role("button", name="Add a passkey")).to_be_visible()
    look_at(page, "settings-security-passkeys", axe_source, screenshots)

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Remove").click()
    assert answer.value.status == 422
    expect(page.get_by_role("alert")).to_be_visible()
    look_at(page, "settings-security-passkey-remove-error", axe_source, screenshots)


def test_axe_really_runs_and_reports_a_serious_violation(page: Page, axe_source: str) -> None:
    """The check above is not vacuous: under the pages' CSP, the injected axe-core finds an
    image without a text alternative (image-alt, critical) added to a real page."""
    page.goto("/login")
    page.evaluate("() => document.querySelector('main').append(document.createElement('img'))")

    violations = blocking_violations(page, axe_source)

    assert [v["id"] for v in violations] == ["image-alt"], describe(violations)
