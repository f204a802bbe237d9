"""The login pages' passkey buttons: the page's script fetches options (JSON) and posts the
authenticator's answer in a form (CSRF-protected, WB-1); the second step of an MFA login takes
a passkey of the waiting account only (MF-2, AC-2)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import Session
from authapp.platform.extensions import db
from tests.app.passkeys.conftest import Holder
from tests.app.passkeys.test_second_factor import enrolled
from tests.app.web.conftest import csrf_token, form_login, submit


def sessions(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Session)) or 0)


def page_options(page: FlaskClient, path: str, form_page: str) -> dict:
    response = page.post(path, data={"csrf_token": csrf_token(page, form_page)})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["publicKey"]


def test_the_login_page_logs_in_with_a_passkey(app, holder: Holder):
    holder.register()
    page = app.test_client()
    options = page_options(page, "/login/passkey/options", "/login")
    answer = json.dumps(holder.authenticator.get(options))

    response = submit(page, "/login/passkey", {"credential": answer}, page="/login")

    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == "/"
    assert "Set-Cookie" in response.headers


def test_the_passkey_forms_need_the_csrf_token(app, holder: Holder):
    """WB-1: options and answer posted without the page's token are refused; no session."""
    holder.register()
    page = app.test_client()
    options = page_options(page, "/login/passkey/options", "/login")
    before = sessions(app)

    bare_options = page.post("/login/passkey/options")
    bare_login = page.post(
        "/login/passkey", data={"credential": json.dumps(holder.authenticator.get(options))}
    )

    assert bare_options.status_code == 400
    assert bare_login.status_code == 400
    assert sessions(app) == before


def test_the_second_step_takes_a_passkey_of_the_waiting_account(app, client, holder: Holder):
    enrolled(client, holder)
    holder.register()
    page = app.test_client()
    assert form_login(page, holder.user["email"]).headers["Location"].endswith("/login/code")
    options = page_options(page, "/login/code/passkey/options", "/login/code")
    assert [d["id"] for d in options["allowCredentials"]] == list(holder.authenticator.credentials)

    answer = json.dumps(holder.authenticator.get(options))
    response = submit(page, "/login/code", {"credential": answer})

    assert response.status_code == 303, response.get_data(as_text=True)
    assert not response.headers["Location"].endswith("/login/code")


def test_the_second_step_refuses_another_accounts_passkey(app, client, holder: Holder, make_holder):
    enrolled(client, holder)
    holder.register()
    other = make_holder(email="eve@example.com")
    other.register()
    page = app.test_client()
    form_login(page, holder.user["email"])
    options = page_options(page, "/login/code/passkey/options", "/login/code")
    options["allowCredentials"] = []
    before = sessions(app)

    response = submit(
        page, "/login/code", {"credential": json.dumps(other.authenticator.get(options))}
    )

    assert response.status_code in (200, 401, 422), response.status_code
    assert "Location" not in response.headers
    assert sessions(app) == before


def test_second_step_options_need_a_waiting_login(app):
    page = app.test_client()

    response = page.post(
        "/login/code/passkey/options", data={"csrf_token": csrf_token(page, "/login")}
    )

    assert response.status_code == 409, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "mfa_login_expired"


def test_an_account_without_a_passkey_is_offered_none_on_the_second_step(
    app, client, holder: Holder, make_holder
):
    """No button, and no options: an empty allow-list would let the authenticator offer any
    account's passkey for this site."""
    enrolled(client, holder)  # TOTP on, no passkey
    make_holder(email="eve@example.com").register()  # someone else's passkey exists
    page = app.test_client()
    form_login(page, holder.user["email"])

    body = page.get("/login/code").get_data(as_text=True)
    options = page.post(
        "/login/code/passkey/options", data={"csrf_token": csrf_token(page, "/login/code")}
    )

    assert "Use a passkey instead" not in body
    assert "passkeys.js" not in body
    assert options.status_code == 409, options.get_data(as_text=True)
    assert options.json["error"]["code"] == "no_passkey"
