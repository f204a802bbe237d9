"""The email address in a real browser on gunicorn, with a real SMTP server: changing it from
the profile page and confirming it from the mailed link (EC-1), and signing up and logging in
when REQUIRE_VERIFIED_EMAIL holds the session back until the address is confirmed."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import log_in_through_form, mail_env, mail_saying, mailed_path
from tests.conftest import PASSWORD
from tests.server.conftest import Server, sign_up, unique
from tests.servers import free_port, smtp_server

SMTP_PORT = free_port()  # fixed before the server starts: its environment is a module constant
GUNICORN_ENV = mail_env(SMTP_PORT)
WRONG_LOGIN = "The login or password is incorrect."


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def session_cookies(context: BrowserContext) -> set[str]:
    return {c["name"] for c in context.cookies()} & {"access_token", "refresh_token"}


def submit_login(page: Page, login: str, password: str) -> int:
    """The login form from the current page, filled and posted; the answer's status."""
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()
    return answer.value.status


def test_change_the_email_address_from_the_profile_and_confirm_it_from_the_mail(
    page: Page, context: BrowserContext, server: Server
) -> None:
    old = sign_up(server, full_name="Nora Tester")["user"]["email"]
    new = f"{unique('moved.')}@example.com"
    hidden_new = f"m***@{new.rpartition('@')[2]}"
    with smtp_server(SMTP_PORT) as smtp:
        mailbox = smtp.mailbox
        log_in_through_form(page, old, PASSWORD)
        expect(page.get_by_test_id("who")).to_have_text(old)

        page.get_by_role("link", name="Settings").click()
        expect(page.get_by_role("heading", name="Change email address")).to_be_visible()
        page.get_by_label("New email address").fill(new)
        page.get_by_label("Current password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Send the confirmation link").click()

        assert path_of(page) == "/settings/profile"
        expect(page.get_by_role("status")).to_have_text(
            "A confirmation link is on its way to the new address. Open it to finish the change."
        )
        expect(page.locator(".who")).to_have_text(old)  # nothing changes before the link
        requested = mail_saying(mailbox, old, "someone asked to change the email address")
        assert hidden_new in requested, requested
        assert new not in requested, requested  # the notice names the new address half hidden

        page.goto(mailed_path(mailbox, new, "/confirm-email-change"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your new email address")
        assert "token=" not in (page.locator("form").get_attribute("action") or "")
        with page.expect_navigation():
            page.get_by_role("button", name="Confirm my new email address").click()

        assert path_of(page) == "/login"
        expect(page.get_by_role("status")).to_have_text(
            "Your email address is changed and every session is logged out. Log in with it now."
        )
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        assert session_cookies(context) == set()
        changed = mail_saying(mailbox, old, "was changed to")
        assert hidden_new in changed, changed

        assert submit_login(page, old, PASSWORD) == 401
        expect(page.get_by_role("alert")).to_have_text(WRONG_LOGIN)
        assert session_cookies(context) == set()

        log_in_through_form(page, new, PASSWORD)
        assert path_of(page) == "/"
        expect(page.get_by_test_id("who")).to_have_text(new)
        page.goto("/settings/profile")
        expect(page.locator(".field").filter(has_text="Email").first).to_contain_text(
            f"{new} (confirmed)"
        )


@pytest.mark.parametrize("server", [{"REQUIRE_VERIFIED_EMAIL": "true"}], indirect=True)
def test_a_required_verified_email_keeps_the_login_back_until_the_mailed_link_is_opened(
    page: Page, context: BrowserContext, server: Server
) -> None:
    email = f"{unique('unverified.')}@example.com"
    with smtp_server(SMTP_PORT) as smtp:
        mailbox = smtp.mailbox
        page.goto("/signup")
        page.get_by_label("Email", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Sign up").click()

        assert answer.value.status == 200
        assert path_of(page) == "/signup"
        expect(page.get_by_test_id("check-your-mail")).to_have_text(
            "Your account is created. Check your mail: confirm your email address with the "
            "link we sent, then log in."
        )
        assert session_cookies(context) == set()
        first_link = mailed_path(mailbox, email, "/verify-email")

        page.get_by_role("link", name="Log in", exact=True).last.click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        assert submit_login(page, email, "not the passphrase at all, sorry") == 401
        expect(page.get_by_role("alert")).to_have_text(WRONG_LOGIN)
        assert submit_login(page, email, PASSWORD) == 403

        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Confirm your email address first")
        assert session_cookies(context) == set()
        alert.get_by_role("link", name="Send me another link").click()
        page.wait_for_url("/verify-email/resend")
        page.get_by_label("Email").fill(email)
        with page.expect_navigation():
            page.get_by_role("button", name="Send the link").click()
        expect(page.get_by_role("status")).to_have_text(
            "If the address belongs to an account that still needs confirming, "
            "a new link is on its way."
        )
        second_link = mailed_path(mailbox, email, "/verify-email", count=2)
        assert second_link != first_link

        page.goto(second_link)
        with page.expect_navigation():
            page.get_by_role("button", name="Confirm my email address").click()
        assert path_of(page) == "/"
        expect(page.get_by_role("status")).to_have_text("Your email address is confirmed.")

        log_in_through_form(page, email, PASSWORD)
        assert path_of(page) == "/"
        expect(page.get_by_test_id("who")).to_have_text(email)
        assert session_cookies(context) == {"access_token", "refresh_token"}
