"""Invitations in a real browser on gunicorn, with a real SMTP server: an owner invites an
existing person and a newcomer from the invitations page; each opens the mailed link, joins,
and works in the second organization (the existing person after switching to it)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in_through_form, mail_env, mailed_path
from tests.conftest import PASSWORD
from tests.server.conftest import Server, sign_up, unique
from tests.servers import free_port, smtp_server

SMTP_PORT = free_port()  # fixed before the server starts: its environment is a module constant
GUNICORN_ENV = mail_env(SMTP_PORT)
ACCEPT = "/invitations/accept"


@pytest.fixture
def owner(server: Server) -> dict[str, str]:
    """The owner of a fresh organization, address confirmed (administration needs it)."""
    name = unique("Orbit ")
    answer = sign_up(server, confirmed=True, organization_name=name)
    return {"email": answer["user"]["email"], "organization": name}


def invite(page: Page, owner: dict[str, str], address: str, role: str) -> None:
    log_in_through_form(page, owner["email"], PASSWORD)
    page.goto("/settings/invitations")
    page.get_by_label("Email").fill(address)
    page.get_by_role("checkbox", name=role, exact=True).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_role("status")).to_have_text(f"Invitation sent to {address}.")
    expect(page.get_by_role("cell", name=address, exact=True)).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()


def test_an_existing_person_accepts_then_switches_to_the_new_organization(
    page: Page, server: Server, owner: dict[str, str]
) -> None:
    ben = sign_up(server, confirmed=True, full_name="Ben Tester")["user"]["email"]
    with smtp_server(SMTP_PORT) as smtp:
        invite(page, owner, ben, "admin")
        link = mailed_path(smtp.mailbox, ben, ACCEPT)

        log_in_through_form(page, ben, PASSWORD)
        expect(page.get_by_test_id("organization")).not_to_have_text(owner["organization"])
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Join {owner['organization']}")
        with page.expect_navigation():
            page.get_by_role("button", name=f"Join {owner['organization']}").click()
        expect(page.get_by_role("status")).to_have_text(f"You joined {owner['organization']}.")

        page.get_by_role("link", name="Organizations").click()
        with page.expect_navigation():
            page.get_by_role("button", name=f"Switch to {owner['organization']}").click()
        page.goto("/")
        expect(page.get_by_test_id("organization")).to_have_text(owner["organization"])
        page.goto("/settings/members")  # admin there: the members, the owner among them
        expect(page.get_by_role("cell", name=owner["email"], exact=True)).to_be_visible()

        page.goto(link)  # the link is spent
        expect(page.get_by_test_id("invitation-invalid")).to_be_visible()


def test_a_newcomer_creates_an_account_from_the_link_and_lands_in_the_organization(
    page: Page, server: Server, owner: dict[str, str]
) -> None:
    newcomer = f"{unique('new.')}@example.com"
    with smtp_server(SMTP_PORT) as smtp:
        invite(page, owner, newcomer, "member")
        page.goto(mailed_path(smtp.mailbox, newcomer, ACCEPT))

        expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Full name (optional)").fill("Nia Newcomer")
        with page.expect_navigation():
            page.get_by_role("button", name="Create my account and join").click()

        expect(page.get_by_test_id("who")).to_have_text(newcomer)
        expect(page.get_by_test_id("organization")).to_have_text(owner["organization"])
