"""The mail flows in a real browser on gunicorn, with a real SMTP server: confirm the email
from the sign-up mail, then forget the password, follow the mailed link, set a new one and log
in with it (RS-1..3, EV-1)."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in_through_form, mail_env, mailed_path
from tests.conftest import PASSWORD
from tests.server.conftest import Server, unique
from tests.servers import free_port, smtp_server

SMTP_PORT = free_port()  # fixed before the server starts: its environment is a module constant
GUNICORN_ENV = mail_env(SMTP_PORT)
NEW_PASSWORD = "an entirely fresh passphrase here"


def test_confirm_email_then_reset_the_password_from_the_mails(page: Page, server: Server) -> None:
    email = f"{unique('mail.')}@example.com"
    with smtp_server(SMTP_PORT) as smtp:
        mailbox = smtp.mailbox
        page.goto("/signup")
        page.get_by_label("Email", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign up").click()

        page.goto(mailed_path(mailbox, email, "/verify-email"))
        with page.expect_navigation():
            page.get_by_role("button", name="Confirm my email address").click()
        expect(page.get_by_role("status")).to_contain_text("confirmed")

        page.context.clear_cookies()
        page.goto("/login")
        page.get_by_role("link", name="Forgot your password?").click()
        page.get_by_label("Email").fill(email)
        with page.expect_navigation():
            page.get_by_role("button", name="Send the link").click()
        expect(page.get_by_role("status")).to_contain_text("on its way")

        page.goto(mailed_path(mailbox, email, "/reset-password"))
        page.get_by_label("New password").fill(NEW_PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Set the password").click()
        assert urlsplit(page.url).path == "/login"

        log_in_through_form(page, email, NEW_PASSWORD)
        expect(page.get_by_test_id("who")).to_have_text(email)
