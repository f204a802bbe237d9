"""The invitation pages driven like a browser: /settings/invitations (list, invite, revoke, with
CSRF, WB-1) and the accept page of the mailed link (a "Join" button for a logged-in browser, a
sign-up form otherwise; a bad link is a page that says so, never a 500)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

from tests.app.settings import conftest as settings_fixtures
from tests.app.settings.invitations import invited, member_roles, organizations_of, pending
from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    csrf_token,
    field_error,
    form_login,
    notice,
    open_browser,
    submit,
    text,
)

tenants = settings_fixtures.tenants
PAGE = "/settings/invitations"


def accept_path(token: str) -> str:
    return f"/invitations/accept?token={token}"


def test_an_owner_invites_from_the_page_and_sees_it_listed(app, tenants):
    browser = open_browser(app, tenants["acme"]["owner"].email)
    body = assert_page(browser.get(PAGE))
    assert 'aria-current="page">Invitations<' in body
    assert 'data-testid="no-invitations"' in body

    sent = submit(
        browser, PAGE, {"email": "pat@example.com", "roles": ["admin"], "roles_present": "1"}
    )

    assert_redirect(sent, PAGE)
    listed = assert_page(browser.get(PAGE))
    assert notice(listed) == "Invitation sent to pat@example.com."
    assert re.search(r"<td>pat@example.com</td>\s*<td>admin</td>", listed)


def test_the_invite_form_shows_what_is_wrong_next_to_the_field(app, tenants):
    browser = open_browser(app, tenants["acme"]["owner"].email)

    bad_email = submit(browser, PAGE, {"email": "nope", "roles": ["member"], "roles_present": "1"})
    no_roles = submit(browser, PAGE, {"email": "pat@example.com", "roles_present": "1"})
    member = submit(browser, PAGE, {"email": "member@acme.example"})

    assert field_error(assert_page(bad_email, 422), "email")
    assert 'id="roles-error"' in assert_page(no_roles, 422)
    assert "already" in alert(assert_page(member, 409))


def test_revoking_from_the_page_needs_the_csrf_token(app, client, tenants):
    acme = tenants["acme"]
    browser = open_browser(app, acme["owner"].email)
    submit(browser, PAGE, {"email": "pat@example.com"})
    [row] = pending(client, acme["owner"])
    action = f"{PAGE}/{row['id']}/revoke"

    forged = browser.post(action)
    assert forged.status_code == 400
    assert len(pending(client, acme["owner"])) == 1

    revoked = submit(browser, action, page=PAGE)

    assert_redirect(revoked, PAGE)
    assert pending(client, acme["owner"]) == []


def test_the_page_needs_users_read_and_its_form_users_manage(app, tenants):
    member = open_browser(app, tenants["acme"]["member"].email)
    auditor = open_browser(app, tenants["acme"]["auditor"].email)

    assert member.get(PAGE).status_code == 403
    body = assert_page(auditor.get(PAGE))
    assert "Invite someone" not in body
    assert auditor.post(PAGE, data={"csrf_token": csrf_token(auditor, PAGE)}).status_code == 403


def test_a_bad_link_is_a_clear_page_not_a_500(client):
    for path in ("/invitations/accept", accept_path("x" * 43), accept_path("%ED%A0%80" * 10)):
        body = assert_page(client.get(path), 400)
        assert 'data-testid="invitation-invalid"' in body


def test_a_newcomer_signs_up_on_the_accept_page(app, client, tenants, mailbox):
    token = invited(client, mailbox, tenants["acme"]["owner"], "new@example.com")
    browser = app.test_client()
    page = browser.get(accept_path(token))
    body = assert_page(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "Join Acme" in body
    assert 'value="new@example.com"' in body
    [login_link] = re.findall(r'href="(/login\?next=[^"]+)"', body)
    assert parse_qs(urlsplit(html.unescape(login_link)).query)["next"] == [accept_path(token)]

    assert (
        browser.post("/invitations/accept", data={"token": token, "password": "x"}).status_code
        == 400
    )
    joined = submit(
        browser,
        "/invitations/accept",
        {"token": token, "password": "a long passphrase nobody guesses", "full_name": "New"},
        page=accept_path(token),
    )

    assert_redirect(joined, "/")
    assert browser.get_cookie("access_token") is not None
    assert organizations_of(app, "new@example.com") == [tenants["acme"].id]
    assert "You joined Acme." in text(browser.get("/"))


def test_a_weak_password_on_the_accept_page_is_shown_and_the_link_kept(
    app, client, tenants, mailbox
):
    token = invited(client, mailbox, tenants["acme"]["owner"], "new@example.com")
    browser = app.test_client()

    weak = submit(
        browser,
        "/invitations/accept",
        {"token": token, "password": "short"},
        page=accept_path(token),
    )

    assert field_error(assert_page(weak, 422), "password")
    assert len(pending(client, tenants["acme"]["owner"])) == 1


def test_a_logged_in_invitee_joins_with_the_button(app, client, tenants, mailbox, make_user):
    acme = tenants["acme"]
    make_user(email="ada@example.com")
    token = invited(client, mailbox, acme["owner"], "ada@example.com", "auditor")
    browser = app.test_client()
    logged_in = form_login(browser, "ada@example.com", next_path=accept_path(token))
    assert_redirect(logged_in, accept_path(token))
    body = assert_page(browser.get(accept_path(token)))
    assert '<button type="submit">Join Acme</button>' in body
    assert 'name="password"' not in body

    joined = submit(browser, "/invitations/accept", {"token": token}, page=accept_path(token))

    assert_redirect(joined, "/")
    assert member_roles(client, acme, "ada@example.com") == ["auditor"]


def test_a_logged_in_browser_of_another_address_is_told_so(
    app, client, tenants, mailbox, make_user
):
    make_user(email="bob@example.com")
    token = invited(client, mailbox, tenants["acme"]["owner"], "ada@example.com")
    browser = open_browser(app, "bob@example.com")
    assert 'data-testid="other-account"' in assert_page(browser.get(accept_path(token)))

    refused = submit(browser, "/invitations/accept", {"token": token}, page=accept_path(token))

    assert "another email address" in alert(assert_page(refused, 403))
    assert len(pending(client, tenants["acme"]["owner"])) == 1
