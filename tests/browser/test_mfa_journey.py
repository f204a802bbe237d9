"""Two-factor authentication in a real browser (Chromium) on real gunicorn and PostgreSQL: set it
up on /settings/security by reading the key off the page and computing the code with pyotp, see
the recovery codes, log out, log in through the code step; a recovery code and turning it off.
axe-core looks at every state of the pages (off, set-up, codes, on, errors, /login/code) and
finds nothing of any impact; screenshots in $AUTHAPP_SCREENSHOTS as in test_accessibility.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, expect

from tests.app.mfa.conftest import code_at, wrong_code
from tests.browser import test_accessibility as accessibility
from tests.browser.conftest import log_in_through_form
from tests.browser.test_accessibility import RUN_AXE, describe, look_at
from tests.conftest import PASSWORD
from tests.server.conftest import Server, bearer, request_json, sign_up

screenshots = accessibility.screenshots  # $AUTHAPP_SCREENSHOTS, else the test's tmp_path
MFA = "/api/v1/settings/mfa/totp"
AUTH_COOKIES = {"access_token", "refresh_token"}


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def cookie_names(context: BrowserContext) -> set[str]:
    return {cookie["name"] for cookie in context.cookies()}


def axe_finds_nothing(page: Page, name: str, axe_source: str, screenshots: Path) -> None:
    """The house check (a screenshot, then no serious or critical violation), then stricter:
    these pages have no violation of any impact, and must keep it so."""
    look_at(page, name, axe_source, screenshots)
    violations = page.evaluate(RUN_AXE)  # axe-core is in the page since look_at
    assert violations == [], f"{name} ({page.url}):\n{describe(violations)}"


def submit_expecting(page: Page, button: str, status: int) -> None:
    """Click `button` and check the status of the POST it sends."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name=button).click()
    assert answer.value.status == status
    page.wait_for_load_state()


def test_set_up_mfa_then_log_in_with_a_code(
    page: Page, context: BrowserContext, server: Server, axe_source: str, screenshots: Path
) -> None:
    email = sign_up(server, confirmed=True)["user"]["email"]  # MFA waits for a confirmed address
    log_in_through_form(page, email, PASSWORD)
    page.goto("/settings/security")
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    expect(page.get_by_text("Status: off")).to_be_visible()
    axe_finds_nothing(page, "settings-security-off", axe_source, screenshots)

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    submit_expecting(page, "Set up two-factor authentication", 200)

    qr = page.locator("figure.qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None
    assert box["width"] >= 100  # big enough to scan from the screen
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    assert len(secret) == 32
    axe_finds_nothing(page, "settings-security-enrolment", axe_source, screenshots)

    page.get_by_label("6-digit code from your app").fill(code_at(secret))
    submit_expecting(page, "Turn on", 200)

    codes = page.get_by_test_id("recovery-codes").locator("li").all_inner_texts()
    assert len(set(codes)) == 10
    expect(page.get_by_text("Status: on")).to_be_visible()
    axe_finds_nothing(page, "settings-security-recovery-codes", axe_source, screenshots)
    page.goto("/settings/security")
    expect(page.get_by_text("You have 10 unused recovery codes.")).to_be_visible()
    assert secret not in page.content()
    assert not any(code in page.content() for code in codes)
    axe_finds_nothing(page, "settings-security-on", axe_source, screenshots)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    log_in_through_form(page, email, PASSWORD)

    assert path_of(page) == "/login/code"
    assert not AUTH_COOKIES & cookie_names(context)
    axe_finds_nothing(page, "login-code", axe_source, screenshots)
    page.get_by_label("Code", exact=True).fill(wrong_code(secret))
    submit_expecting(page, "Log in", 401)
    code_field = page.get_by_label("Code", exact=True)
    expect(code_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#totp_code-error")).to_have_text(
        "The code is incorrect or was used already."
    )
    expect(page.get_by_role("alert")).to_be_visible()
    expect(code_field).to_have_value("")
    expect(code_field).to_be_focused()
    axe_finds_nothing(page, "login-code-error", axe_source, screenshots)

    code_field.fill(code_at(secret, +1))
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    assert path_of(page) == "/"
    expect(page.get_by_test_id("who")).to_have_text(email)
    assert cookie_names(context) >= AUTH_COOKIES


def test_a_recovery_code_logs_in_and_the_page_turns_mfa_off(
    page: Page, context: BrowserContext, server: Server, axe_source: str, screenshots: Path
) -> None:
    account = sign_up(server, confirmed=True)
    email, headers = account["user"]["email"], bearer(account["access_token"])
    status, _, started = request_json(server, "POST", MFA, {"password": PASSWORD}, headers)
    assert status == 200, started
    secret = started["secret"]
    status, _, confirmed = request_json(
        server, "POST", f"{MFA}/confirm", {"code": code_at(secret)}, headers
    )
    assert status == 200, confirmed
    page.goto("/login?next=/settings/security")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert path_of(page) == "/login/code"

    page.get_by_label("Code", exact=True).fill(confirmed["recovery_codes"][0])
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    assert path_of(page) == "/settings/security"  # `next` kept across the code step
    expect(page.get_by_text("You have 9 unused recovery codes.")).to_be_visible()

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Code from your app, or a recovery code").fill(wrong_code(secret))
    submit_expecting(page, "Turn off two-factor authentication", 422)
    expect(page.get_by_label("Code from your app, or a recovery code")).to_have_attribute(
        "aria-invalid", "true"
    )
    axe_finds_nothing(page, "settings-security-disable-error", axe_source, screenshots)

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Code from your app, or a recovery code").fill(code_at(secret, +1))
    with page.expect_navigation():
        page.get_by_role("button", name="Turn off two-factor authentication").click()

    expect(page.get_by_role("status")).to_have_text("Two-factor authentication is off.")
    expect(page.get_by_text("Status: off")).to_be_visible()
    page.context.clear_cookies()
    log_in_through_form(page, email, PASSWORD)
    expect(page.get_by_test_id("who")).to_have_text(email)  # the password alone again
