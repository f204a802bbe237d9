"""Passkeys (WebAuthn) in a real browser (Chromium) on real gunicorn and PostgreSQL, with
Chromium's virtual authenticator (DevTools protocol, `WebAuthn.*`) standing in for a phone or a
security key: add one on /settings/security, sign in with it on /login without a password, use
it for the second step of an account with two-factor authentication on, rename and remove it;
and the refusals (an IP address as RP id, a replayed answer, an expired challenge, another
account's passkey).

WebAuthn refuses an IP address as RP id, and outside production authapp takes the RP id and
origin from the request's host (authapp/auth/relying_party.py): these pages are opened as
http://localhost:PORT (the same gunicorn; localhost is a secure context).

tests/browser/record_passkey_answers.py (run by hand) records Chromium's answers for
tests/app/passkeys/test_recorded_answers.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, Route, expect

from authapp.models.audit import AuditEvent
from tests.app.mfa.conftest import code_at
from tests.browser.conftest import TIMEOUT_MS, log_in_through_form
from tests.conftest import PASSWORD
from tests.server.conftest import Server, bearer, request_json, sign_up

MFA = "/api/v1/settings/mfa/totp"
REFUSED = "The passkey was not accepted"
CHALLENGE_TTL = 300  # WEBAUTHN_CHALLENGE_TTL's default, 5 minutes
RECORDED = Path(__file__).resolve().parents[1] / "app" / "passkeys" / "recorded"
VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def by_name(server: Server) -> str:
    """The server's address with a domain name: WebAuthn refuses an IP address as RP id."""
    return server.base_url.replace("127.0.0.1", "localhost")


@pytest.fixture
def context(new_context: Any, server: Server) -> BrowserContext:
    """As tests/browser/conftest.py's, on http://localhost:PORT."""
    made: BrowserContext = new_context(base_url=by_name(server))
    made.set_default_timeout(TIMEOUT_MS)
    return made


# Chromium's virtual authenticator answers a conditional (autofill) request at once, as if the
# person had picked the passkey in the username field's autofill: every /login would log in on
# its own. The tests of the buttons tell the page's script that autofill is unavailable.
NO_AUTOFILL = (
    "window.PublicKeyCredential && Object.defineProperty(PublicKeyCredential, "
    "'isConditionalMediationAvailable', {value: async () => false})"
)


class Authenticator:
    """A virtual authenticator in `page`'s tab (user verification on, presence automatic);
    `autofill=False` hides conditional mediation from the pages (NO_AUTOFILL)."""

    def __init__(self, page: Page, *, autofill: bool = False) -> None:
        if not autofill:
            page.add_init_script(NO_AUTOFILL)
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable")
        added = self.cdp.send(
            "WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR}
        )
        self.id = added["authenticatorId"]

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(answer["credentials"])


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def passkey_rows(page: Page) -> Any:
    return page.get_by_test_id("passkeys").locator("tbody tr")


def passkey_form(page: Page) -> Any:
    return page.locator("form[data-passkey=create]")


def add_passkey(page: Page, name: str, password: str = PASSWORD) -> None:
    """The security page's "Add a passkey" (the password again: a stolen session must not
    plant one), waiting for the page it posts to."""
    page.goto("/settings/security")
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    page.get_by_label("Passkey name (optional)").fill(name)
    passkey_form(page).get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Add a passkey").click()
    assert path_of(page) == "/settings/security"
    expect(page.get_by_text(f"Passkey “{name}” added")).to_be_visible()
    expect(passkey_rows(page).filter(has_text=name)).to_have_count(1)


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def sign_in_with_passkey(page: Page, button: str = "Sign in with a passkey") -> int:
    """Click the passkey button of the page; the status of the answer its form posts (to
    /login/passkey, or /login/code for the second step)."""
    with (
        page.expect_navigation(),
        page.expect_response(
            lambda r: r.request.method == "POST" and not path_of_url(r.url).endswith("/options")
        ) as answer,
    ):
        page.get_by_role("button", name=button).click()
    return answer.value.status


def turn_on_mfa(server: Server, access_token: str) -> str:
    """Two-factor authentication on, through the API; the TOTP secret."""
    headers = bearer(access_token)
    status, _, started = request_json(server, "POST", MFA, {"password": PASSWORD}, headers)
    assert status == 200, started
    secret: str = started["secret"]
    status, _, confirmed = request_json(
        server, "POST", f"{MFA}/confirm", {"code": code_at(secret)}, headers
    )
    assert status == 200, confirmed
    return secret


def refusals_of(server: Server, user_id: str) -> list[str]:
    """Why the account's passkey logins were refused, oldest first (the audit trail's `why`:
    the page says less)."""
    engine = sa.create_engine(server.env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(AuditEvent.data)
                .where(AuditEvent.user_id == user_id, AuditEvent.event == "login.failed")
                .order_by(AuditEvent.created_at)
            )
            return [data.get("why", data.get("reason")) for (data,) in rows]
    finally:
        engine.dispose()


def move_clock(server: Server, seconds: int) -> None:
    status, _, body = request_json(server, "POST", "/_testing/clock", {"offset_seconds": seconds})
    assert status == 200, body


def test_add_a_passkey_sign_in_with_it_then_remove_it(
    page: Page, context: BrowserContext, server: Server
) -> None:
    email = sign_up(server, confirmed=True)["user"]["email"]
    authenticator = Authenticator(page)
    log_in_through_form(page, email, PASSWORD)

    add_passkey(page, "Work laptop")

    assert len(authenticator.credentials()) == 1
    row = passkey_rows(page).filter(has_text="Work laptop")
    expect(row.locator("td").nth(2)).to_have_text("never")
    log_out(page)

    page.goto("/login")
    assert sign_in_with_passkey(page) == 303
    assert path_of(page) == "/"
    expect(page.get_by_test_id("who")).to_have_text(email)
    page.goto("/settings/security")
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$"))

    row.get_by_role("button", name="Remove").click()  # the last one: the password is needed
    expect(page.get_by_role("alert")).to_be_visible()
    expect(passkey_rows(page)).to_have_count(1)
    page.get_by_label("Password to remove your last passkey").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Passkey removed.")).to_be_visible()
    expect(page.get_by_text("You have no passkey yet.")).to_be_visible()
    log_out(page)

    assert len(authenticator.credentials()) == 1  # still held: the server must refuse it
    page.goto("/login")
    assert sign_in_with_passkey(page) == 401
    assert path_of(page) == "/login/passkey"
    expect(page.get_by_role("alert")).to_contain_text(REFUSED)
    assert not {c["name"] for c in context.cookies()} & {"access_token", "refresh_token"}


def test_the_username_fields_autofill_signs_in_with_a_passkey(
    page: Page, context: BrowserContext, server: Server
) -> None:
    """Conditional mediation: /login asks at once for any passkey of this site; picking it in
    the autofill (the virtual authenticator picks it by itself) posts it, no button pressed."""
    email = sign_up(server, confirmed=True)["user"]["email"]
    Authenticator(page, autofill=True)
    log_in_through_form(page, email, PASSWORD)
    add_passkey(page, "Autofill")
    context.clear_cookies()

    with page.expect_response(
        lambda r: r.request.method == "POST" and path_of_url(r.url) == "/login/passkey"
    ) as answer:
        page.goto("/login")
    assert answer.value.status == 303
    page.wait_for_url("**/")
    expect(page.get_by_test_id("who")).to_have_text(email)


def test_a_passkey_stands_in_for_the_code_of_two_factor_authentication(
    page: Page, context: BrowserContext, server: Server
) -> None:
    account = sign_up(server, confirmed=True)  # MFA waits for a confirmed address
    email = account["user"]["email"]
    Authenticator(page)
    log_in_through_form(page, email, PASSWORD)
    add_passkey(page, "Phone")
    turn_on_mfa(server, account["access_token"])
    context.clear_cookies()

    log_in_through_form(page, email, PASSWORD)
    assert path_of(page) == "/login/code"
    assert sign_in_with_passkey(page, "Use a passkey instead") == 303

    assert path_of(page) == "/"
    expect(page.get_by_test_id("who")).to_have_text(email)


def test_an_ip_address_gets_no_passkeys(new_context: Any, server: Server) -> None:
    """http://127.0.0.1:PORT cannot be an RP id: the pages say so and offer no button."""
    by_address: BrowserContext = new_context(base_url=server.base_url)
    by_address.set_default_timeout(TIMEOUT_MS)
    page = by_address.new_page()
    Authenticator(page)
    log_in_through_form(page, sign_up(server, confirmed=True)["user"]["email"], PASSWORD)

    page.goto("/settings/security")
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    expect(
        page.get_by_text("Passkeys need this site to be opened by its domain name")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Add a passkey")).to_have_count(0)
    page.context.clear_cookies()
    page.goto("/login")
    expect(page.get_by_label("Email or username")).to_have_attribute("autocomplete", "username")
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_have_count(0)


def test_a_replayed_answer_is_refused(page: Page, context: BrowserContext, server: Server) -> None:
    user = sign_up(server, confirmed=True)["user"]
    email = user["email"]
    Authenticator(page)
    log_in_through_form(page, email, PASSWORD)
    add_passkey(page, "Replayed")
    log_out(page)

    page.goto("/login")
    with page.expect_request(
        lambda r: r.method == "POST" and path_of_url(r.url) == "/login/passkey"
    ) as sent:
        assert sign_in_with_passkey(page) == 303
    expect(page.get_by_test_id("who")).to_have_text(email)
    fields = dict(parse_qsl(sent.value.post_data or ""))
    assert json.loads(fields["credential"])["type"] == "public-key"
    log_out(page)

    page.goto("/login")  # a fresh CSRF token: only the credential is replayed
    token = page.locator("form[data-passkey] input[name=csrf_token]").input_value()
    again = page.request.post("/login/passkey", form={**fields, "csrf_token": token})

    assert again.status == 401, again.text()
    assert REFUSED in again.text()
    assert not {c["name"] for c in context.cookies()} & {"access_token", "refresh_token"}
    assert refusals_of(server, user["id"]) == ["challenge_not_live"]  # spent by the first use


def path_of_url(url: str) -> str:
    return urlsplit(url).path


def test_an_answer_after_the_challenge_expired_is_refused(
    page: Page, context: BrowserContext, server: Server
) -> None:
    """The options come back, the server's clock moves past WEBAUTHN_CHALLENGE_TTL, then the
    browser answers: refused."""
    user = sign_up(server, confirmed=True)["user"]
    email = user["email"]
    Authenticator(page)
    log_in_through_form(page, email, PASSWORD)
    add_passkey(page, "Slow")
    log_out(page)

    def late(route: Route) -> None:
        options = route.fetch()
        move_clock(server, CHALLENGE_TTL + 60)
        route.fulfill(response=options)

    page.goto("/login")
    page.route("**/login/passkey/options", late)
    try:
        assert sign_in_with_passkey(page) == 401
    finally:
        move_clock(server, 0)
    expect(page.get_by_role("alert")).to_contain_text(REFUSED)
    assert not {c["name"] for c in context.cookies()} & {"access_token", "refresh_token"}
    assert refusals_of(server, user["id"]) == ["challenge_not_live"]


def test_another_accounts_passkey_is_not_offered_for_the_second_step(
    page: Page, context: BrowserContext, server: Server
) -> None:
    """B's passkey is in the authenticator; A (MFA on, no passkey of its own) is asked for its
    code with no passkey button, so the browser is never asked for B's passkey. (A passkey of
    another account posted anyway is refused: tests/app/passkeys/test_pages.py.)"""
    other = sign_up(server, confirmed=True)["user"]["email"]
    account = sign_up(server, confirmed=True)
    authenticator = Authenticator(page)
    log_in_through_form(page, other, PASSWORD)
    add_passkey(page, "Not yours")
    context.clear_cookies()
    turn_on_mfa(server, account["access_token"])

    log_in_through_form(page, account["user"]["email"], PASSWORD)

    assert path_of(page) == "/login/code"
    expect(page.get_by_label("Code")).to_be_visible()
    expect(page.get_by_role("button", name="Use a passkey instead")).to_have_count(0)
    assert len(authenticator.credentials()) == 1
    assert not {c["name"] for c in context.cookies()} & {"access_token", "refresh_token"}


def test_rename_a_passkey(page: Page, server: Server) -> None:
    Authenticator(page)
    log_in_through_form(page, sign_up(server, confirmed=True)["user"]["email"], PASSWORD)
    add_passkey(page, "Work laptop")

    page.get_by_label("New name for Work laptop").fill("Home desktop")
    with page.expect_navigation():
        page.get_by_role("button", name="Rename").click()

    expect(page.get_by_text("Passkey renamed.")).to_be_visible()
    expect(passkey_rows(page)).to_have_count(1)
    expect(passkey_rows(page).locator("td").first).to_have_text("Home desktop")
    expect(page.get_by_label("New name for Home desktop")).to_have_value("Home desktop")


@pytest.mark.parametrize(
    ("confirmed", "password", "says"),
    [
        (True, "not the passphrase at all", "The password is incorrect."),
        (False, PASSWORD, "Confirm your email address first"),
    ],
    ids=["wrong-password", "unconfirmed-address"],
)
def test_adding_a_passkey_is_refused_before_the_authenticator_is_asked(
    page: Page, server: Server, confirmed: bool, password: str, says: str
) -> None:
    authenticator = Authenticator(page)
    log_in_through_form(page, sign_up(server, confirmed=confirmed)["user"]["email"], PASSWORD)
    page.goto("/settings/security")
    page.get_by_label("Passkey name (optional)").fill("Refused")
    passkey_form(page).get_by_label("Password", exact=True).fill(password)

    with page.expect_response("**/settings/security/passkeys/options") as answer:
        page.get_by_role("button", name="Add a passkey").click()

    assert answer.value.status in (403, 422)
    expect(passkey_form(page).get_by_role("status")).to_contain_text(says)
    expect(page.get_by_role("button", name="Add a passkey")).to_be_enabled()
    assert path_of(page) == "/settings/security"
    assert authenticator.credentials() == []
    expect(page.get_by_text("You have no passkey yet.")).to_be_visible()


def test_a_refused_account_deletion_keeps_the_passkeys_on_the_page(
    page: Page, server: Server
) -> None:
    """The deletion form's refusal renders the whole security page, passkeys included."""
    Authenticator(page)
    log_in_through_form(page, sign_up(server, confirmed=True)["user"]["email"], PASSWORD)
    add_passkey(page, "Work laptop")

    page.get_by_label("Password to delete the account").fill("not the passphrase at all")
    page.get_by_label("I understand").check()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Delete my account").click()

    assert answer.value.status == 422
    expect(page.get_by_role("alert")).to_be_visible()
    expect(passkey_rows(page)).to_have_count(1)
