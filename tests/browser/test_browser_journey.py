"""A person in a real browser (Chromium) on real gunicorn and PostgreSQL: sign up, edit the
profile, log out, come back through `next`, revoke another device, outlive the access token;
and the forms' errors, focus and password-manager friendliness."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import PASSWORD
from tests.server.conftest import Server, bearer, request_json, sign_up, unique

ACCESS_TOKEN_TTL = 900  # authapp's default: the clock moves past it below
SECOND_DEVICE = "e2e second device (JSON client)"
INPUTS = "els => els.map(e => [e.name, e.getAttribute('autocomplete')])"


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def cookie_names(context: BrowserContext) -> set[str]:
    return {cookie["name"] for cookie in context.cookies()}


def cookie_value(context: BrowserContext, name: str) -> str:
    return next(cookie["value"] for cookie in context.cookies() if cookie["name"] == name)


def sign_up_through_form(page: Page, email: str, password: str) -> None:
    page.goto("/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign up").click()


def test_sign_up_profile_logout_next_login_revoke_and_transparent_refresh(
    page: Page, context: BrowserContext, server: Server
) -> None:
    """The whole journey in one browser: WB-1 (every form posts its CSRF token), SE-1, SE-5,
    WB-6 (`next` brings the person back), and the access cookie refreshed without a login."""
    email = f"{unique('journey.')}@example.com"

    sign_up_through_form(page, email, PASSWORD)

    assert path_of(page) == "/"
    expect(page.get_by_test_id("who")).to_have_text(email)
    assert {"access_token", "refresh_token", "session"} <= cookie_names(context)

    status, _, other = request_json(
        server,
        "POST",
        "/api/v1/auth/login",
        {"login": email, "password": PASSWORD},
        headers={"User-Agent": SECOND_DEVICE},
    )
    assert status == 200, other

    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    page.get_by_label("Full name", exact=True).fill("Ada Lovelace")
    page.get_by_role("button", name="Save profile").click()

    expect(page.get_by_role("status")).to_have_text("Profile saved.")
    expect(page.get_by_label("Full name", exact=True)).to_have_value("Ada Lovelace")
    page.get_by_role("link", name="authapp").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Ada Lovelace")

    page.get_by_role("button", name="Log out").click()

    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert path_of(page) == "/login"
    assert not {"access_token", "refresh_token"} & cookie_names(context)

    page.goto("/settings/sessions")

    assert path_of(page) == "/login"
    assert parse_qs(urlsplit(page.url).query) == {"next": ["/settings/sessions"]}

    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    assert path_of(page) == "/settings/sessions"
    rows = page.get_by_role("row")
    expect(rows.filter(has_text="(this device)")).to_have_count(1)
    other_row = rows.filter(has_text=SECOND_DEVICE)
    expect(other_row).to_have_count(1)

    other_row.get_by_role("button", name="Log out").click()

    expect(page.get_by_role("status")).to_have_text("Session logged out.")
    expect(rows.filter(has_text=SECOND_DEVICE)).to_have_count(0)
    expect(rows.filter(has_text="(this device)")).to_have_count(1)
    status, _, body = request_json(
        server, "GET", "/api/v1/auth/me", headers=bearer(other["access_token"])
    )
    assert status == 401, body
    assert body["error"]["code"] == "token_revoked", body

    access_before = cookie_value(context, "access_token")
    status, _, body = request_json(
        server, "POST", "/_testing/clock", {"offset_seconds": ACCESS_TOKEN_TTL + 60}
    )
    assert status == 200, body
    try:
        page.reload()

        assert path_of(page) == "/settings/sessions"
        expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
        expect(page.locator(".who")).to_have_text(email)
        assert cookie_value(context, "access_token") != access_before
    finally:
        status, _, body = request_json(server, "POST", "/_testing/clock", {"offset_seconds": 0})
        assert status == 200, body


def test_a_wrong_password_shows_the_same_generic_alert_as_an_unknown_login(
    page: Page, context: BrowserContext, server: Server
) -> None:
    """EN-1 on the page: the alert box says only that the login or password is wrong."""
    email = sign_up(server)["user"]["email"]
    alerts = []

    for login in (email, f"{unique('nobody.')}@example.com"):
        page.goto("/login")
        page.get_by_label("Email or username").fill(login)
        page.get_by_label("Password", exact=True).fill("not the passphrase at all, sorry")
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Log in").click()

        assert answer.value.status == 401
        alert = page.get_by_role("alert")
        expect(alert).to_have_text("The login or password is incorrect.")
        alerts.append(alert.inner_html())
        expect(page.get_by_label("Email or username")).to_have_value(login)
        expect(page.get_by_label("Password", exact=True)).to_have_value("")

    assert alerts[0] == alerts[1]
    assert not {"access_token", "refresh_token"} & cookie_names(context)


def test_a_too_short_password_on_sign_up_is_marked_and_focused(page: Page) -> None:
    """PW-1 on the page: the message sits next to the field, which has the focus, and the
    typed email is kept while the password is not."""
    email = f"{unique('short.')}@example.com"

    page.goto("/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("zq vx 9")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign up").click()

    assert answer.value.status == 422
    password = page.get_by_label("Password", exact=True)
    expect(password).to_be_focused()
    assert page.evaluate("document.activeElement.id") == "password"
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_have_text("Must be at least 15 characters.")
    expect(password).to_have_accessible_description(
        "At least 15 characters. Long passphrases are welcome. Must be at least 15 characters."
    )
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)
    expect(password).to_have_value("")


def test_password_fields_welcome_password_managers_and_paste(
    page: Page, context: BrowserContext
) -> None:
    """PW-6: autocomplete hints on every credential field, no paste blocking, and a password
    pasted from the clipboard signs the person up."""
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    email = f"{unique('paste.')}@example.com"

    page.goto("/login")
    assert page.locator("input:not([type=hidden])").evaluate_all(INPUTS) == [
        ["login", "username"],
        ["password", "current-password"],
    ]
    page.goto("/signup")
    assert page.locator("input[type=email], input[type=password]").evaluate_all(INPUTS) == [
        ["email", "email"],
        ["password", "new-password"],
    ]
    assert (
        page.locator(
            "form[autocomplete=off], [onpaste], [oncopy], [ondrop], input[autocomplete=off]"
        ).all()
        == []
    )

    page.get_by_label("Email", exact=True).fill(email)
    page.evaluate("text => navigator.clipboard.writeText(text)", PASSWORD)
    page.get_by_label("Password", exact=True).focus()
    page.keyboard.press("ControlOrMeta+V")
    expect(page.get_by_label("Password", exact=True)).to_have_value(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_test_id("who")).to_have_text(email)
    page.goto("/settings/password")
    assert page.locator("input[autocomplete]").evaluate_all(INPUTS) == [
        ["username", "username"],
        ["current_password", "current-password"],
        ["new_password", "new-password"],
    ]
    assert page.locator("[onpaste], [oncopy], form[autocomplete=off]").all() == []
    page.get_by_label("Current password").focus()
    page.keyboard.press("ControlOrMeta+V")
    expect(page.get_by_label("Current password")).to_have_value(PASSWORD)
