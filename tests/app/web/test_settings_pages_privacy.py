"""A person's data and account in the browser: "Download my data" on the security page (the
export as a file, with the cookie), and the "Delete my account" form (the password, a ticked
box, CSRF), which ends on the login page with a notice."""

from __future__ import annotations

import sqlalchemy as sa

from authapp.models import User
from authapp.platform.extensions import db
from tests.app.settings import conftest as settings_fixtures
from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    field_error,
    notice,
    open_browser,
    submit,
)
from tests.conftest import PASSWORD

tenants = settings_fixtures.tenants
DELETE = "/settings/account/delete"
SECURITY = "/settings/security"


def exists(app, email):
    with app.app_context():
        return db.session.scalar(sa.select(User.id).where(User.email == email)) is not None


def delete(browser, password=PASSWORD, confirm="yes"):
    form = {"delete_password": password} | ({"delete_confirm": confirm} if confirm else {})
    return submit(browser, DELETE, form, page=SECURITY)


def test_the_security_page_offers_the_download_and_the_deletion(app, ada):
    body = assert_page(open_browser(app, ada["email"]).get(SECURITY))

    assert 'href="/settings/account/export"' in body
    assert f'action="{DELETE}"' in body
    assert 'name="delete_password"' in body
    assert 'name="delete_confirm"' in body


def test_the_download_is_the_export_as_a_file(app, ada):
    response = open_browser(app, ada["email"]).get("/settings/account/export")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="authapp-')
    assert response.headers["Cache-Control"] == "no-store"
    document = response.json
    assert document["user"]["email"] == ada["email"]
    assert "password_hash" not in response.get_data(as_text=True)


def test_the_download_needs_a_login(client):
    response = client.get("/settings/account/export")

    assert response.status_code in (302, 303)
    assert "/login" in response.headers["Location"]


def test_a_post_without_the_csrf_token_deletes_nothing(app, ada):
    browser = open_browser(app, ada["email"])

    response = browser.post(DELETE, data={"delete_password": PASSWORD, "delete_confirm": "yes"})

    assert_page(response, 400)
    assert exists(app, ada["email"])


def test_a_wrong_password_is_shown_and_deletes_nothing(app, ada):
    browser = open_browser(app, ada["email"])

    body = assert_page(delete(browser, password="not my password, I am afraid"), 422)

    assert field_error(body, "delete_password") == "The password is incorrect."
    assert exists(app, ada["email"])


def test_the_box_must_be_ticked(app, ada):
    browser = open_browser(app, ada["email"])

    body = assert_page(delete(browser, confirm=None), 422)

    assert "Tick the box" in field_error(body, "delete_confirm")
    assert exists(app, ada["email"])


def test_an_owner_is_told_to_transfer_ownership(app, tenants):
    browser = open_browser(app, tenants["acme"]["owner"].email)

    body = assert_page(delete(browser), 409)

    assert "transfer ownership" in alert(body)
    assert exists(app, tenants["acme"]["owner"].email)


def test_deletion_logs_out_and_lands_on_the_login_page(app, ada):
    browser = open_browser(app, ada["email"])

    response = delete(browser)

    assert_redirect(response, "/login")
    assert browser.get_cookie("access_token") is None
    assert notice(assert_page(browser.get("/login"))) == "Your account and its data were deleted."
    assert not exists(app, ada["email"])
    assert browser.get(SECURITY).status_code in (302, 303)
