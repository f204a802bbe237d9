"""Browser pages through Flask's test client with real CSRF tokens: sign-up, login, `next`
(WB-6), logout (SE-1), the login guard, CSRF on every form (WB-1) and escaping (WB-7).

This part: logout, CSRF on every state-changing form (WB-1), and stored input escaped (WB-7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.platform.extensions import db
from tests.app.web.conftest import (
    claims,
    cookie,
    csrf_token,
    form_signup,
    input_tag,
    set_cookies,
    submit,
    text,
)
from tests.conftest import PASSWORD, auth_header, confirm_email

ME = "/api/v1/auth/me"
SETTINGS = "/api/v1/settings"
NEW_PASSWORD = "another long passphrase nobody guesses"
CSRF_MESSAGE = "This form has expired or was not sent from this site."


# Logout


def test_logout_form_revokes_the_session_and_clears_the_cookies(logged_in_client):
    """SE-1."""
    access = cookie(logged_in_client, "access_token")
    refresh = cookie(logged_in_client, "refresh_token")

    response = submit(logged_in_client, "/logout", page="/")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    cleared = set_cookies(response)
    for name in ("access_token", "refresh_token", "csrf_access_token", "csrf_refresh_token"):
        assert cleared[name]["value"] == "", name
        assert "1970" in (cleared[name].get("expires") or "") or cleared[name].get("max-age") == "0"
        assert logged_in_client.get_cookie(name) is None, name
    me = logged_in_client.get(ME, headers=auth_header(access))
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    refreshed = logged_in_client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert refreshed.status_code == 401
    assert refreshed.json["error"]["code"] == "token_revoked"
    assert logged_in_client.get("/settings/profile").status_code == 302


def test_get_logout_is_405_and_revokes_nothing(logged_in_client):
    """WB-2: GET never changes state."""
    access = cookie(logged_in_client, "access_token")

    response = logged_in_client.get("/logout")

    assert response.status_code == 405
    assert logged_in_client.get(ME, headers=auth_header(access)).status_code == 200
    assert logged_in_client.get("/settings/profile").status_code == 200


# WB-1: every state-changing form


@dataclass
class Acme:
    """An organization whose owner is logged in through the forms, with one of everything a
    form can change."""

    owner_email: str
    other_session_id: str
    other_access_token: str
    member_id: str
    role_id: str
    key_id: str


@pytest.fixture
def acme(app: Flask, client: FlaskClient, make_user) -> Acme:
    signed_up = form_signup(client, "owner@acme.example", organization_name="Acme")
    assert signed_up.status_code == 303, text(signed_up)
    confirm_email(app, "owner@acme.example")
    other = client.post(
        "/api/v1/auth/login", json={"login": "owner@acme.example", "password": PASSWORD}
    ).json
    headers = auth_header(other["access_token"])
    organization_id = other["user"]["organization"]["id"]
    member = make_user(email="member@acme.example", organization=organization_id)
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "auditor", "permissions": ["users:read"]},
        headers=headers,
    )
    assert role.status_code == 201, role.json
    key = client.post(
        f"{SETTINGS}/api-keys", json={"name": "ci", "scopes": ["users:read"]}, headers=headers
    )
    assert key.status_code == 201, key.json
    return Acme(
        owner_email="owner@acme.example",
        other_session_id=claims(other["access_token"])["sid"],
        other_access_token=other["access_token"],
        member_id=member["id"],
        role_id=role.json["id"],
        key_id=key.json["id"],
    )


def forms(acme: Acme) -> dict[str, tuple[str, dict[str, Any], str]]:
    """Every state-changing form: (action, fields, the page that carries it)."""
    return {
        "signup": ("/signup", {"email": "new@example.com", "password": PASSWORD}, "/signup"),
        "login": ("/login", {"login": acme.owner_email, "password": PASSWORD}, "/login"),
        "logout": ("/logout", {}, "/"),
        "profile": (
            "/settings/profile",
            {"full_name": "Changed", "username": "changed"},
            "/settings/profile",
        ),
        "password": (
            "/settings/password",
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            "/settings/password",
        ),
        "session revoke": (
            f"/settings/sessions/{acme.other_session_id}/revoke",
            {},
            "/settings/sessions",
        ),
        "api key create": (
            "/settings/api-keys",
            {"name": "new key", "scopes": ["users:read"], "scopes_present": "1"},
            "/settings/api-keys",
        ),
        "api key revoke": (f"/settings/api-keys/{acme.key_id}/revoke", {}, "/settings/api-keys"),
        "member update": (
            f"/settings/members/{acme.member_id}",
            {"roles": ["member", "auditor"], "is_active": "true"},
            "/settings/members",
        ),
        "role create": (
            "/settings/roles",
            {"name": "support", "permissions": ["users:read"], "permissions_present": "1"},
            "/settings/roles",
        ),
        "role edit": (
            f"/settings/roles/{acme.role_id}",
            {"name": "renamed", "permissions": ["audit:read"], "permissions_present": "1"},
            "/settings/roles",
        ),
        "role delete": (f"/settings/roles/{acme.role_id}/delete", {}, "/settings/roles"),
    }


FORM_NAMES = [
    "signup",
    "login",
    "logout",
    "profile",
    "password",
    "session revoke",
    "api key create",
    "api key revoke",
    "member update",
    "role create",
    "role edit",
    "role delete",
]
UNCHECKED_TABLES = {"audit_events", "testing_clock"}


def snapshot(app: Flask) -> dict[str, list[str]]:
    """Every row the forms could change."""
    with app.app_context(), db.engine.connect() as conn:
        return {
            name: sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
            for name, table in db.metadata.tables.items()
            if name not in UNCHECKED_TABLES
        }


@pytest.mark.parametrize("name", FORM_NAMES)
def test_each_form_works_with_its_csrf_token(app, client, acme, name):
    """The control for WB-1: the same posts, with the page's token, do change something."""
    action, fields, page = forms(acme)[name]
    before = snapshot(app)

    response = submit(client, action, fields, page=page)

    assert response.status_code in (200, 303), text(response)
    assert 'role="alert"' not in text(response)
    assert snapshot(app) != before


@pytest.mark.parametrize("token", ["missing", "garbage", "another session's"])
@pytest.mark.parametrize("name", FORM_NAMES)
def test_each_form_refuses_a_missing_or_wrong_csrf_token(app, client, acme, name, token):
    """WB-1: 400 HTML page, nothing changed, the browser still logged in."""
    action, fields, page = forms(acme)[name]
    assert client.get(page).status_code == 200  # the session cookie holds a CSRF secret
    data = dict(fields)
    if token == "garbage":
        data["csrf_token"] = "IjAxMjM0NTY3ODkiIA.aAbBcC.not-a-signature"
    elif token == "another session's":
        data["csrf_token"] = csrf_token(app.test_client())
    access = cookie(client, "access_token")
    before = snapshot(app)

    response = client.post(action, data=data)

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert CSRF_MESSAGE in text(response)
    assert snapshot(app) == before
    assert "access_token" not in set_cookies(response)
    assert cookie(client, "access_token") == access
    assert client.get("/settings/profile").status_code == 200
    assert client.get(ME, headers=auth_header(acme.other_access_token)).status_code == 200


POST_ONLY = ["logout", "session revoke", "api key revoke", "member update", "role delete"]


@pytest.mark.parametrize("name", POST_ONLY)
def test_get_on_a_form_action_is_405_and_changes_nothing(app, client, acme, name):
    """WB-2: GET never changes state, even with valid cookies."""
    action, _, _ = forms(acme)[name]
    before = snapshot(app)

    response = client.get(action)

    assert response.status_code == 405
    assert snapshot(app) == before
    assert client.get("/settings/profile").status_code == 200


# WB-7: stored input is escaped

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_a_full_name_with_markup_is_escaped_on_every_page(client):
    """WB-7."""
    response = form_signup(
        client, "owner@acme.example", full_name=SCRIPT, organization_name='<img src=x onerror="1">'
    )
    assert response.status_code == 303

    for path in ("/", "/settings/profile", "/settings/members"):
        page = text(client.get(path))
        assert SCRIPT not in page, path
        assert ESCAPED in page, path
        assert "<img src=x" not in page, path
    assert "&lt;img src=x onerror=" in text(client.get("/"))


def test_a_re_rendered_form_escapes_what_was_typed(client):
    """WB-7: a value echoed back into an attribute cannot close it."""
    typed = '"><script>alert(1)</script>'

    response = form_signup(client, typed, full_name=typed)

    assert response.status_code == 422
    page = text(response)
    assert "<script>alert(1)" not in page
    assert 'value="&#34;&gt;&lt;script&gt;' in input_tag(page, "email") or (
        "&quot;&gt;&lt;script&gt;" in input_tag(page, "email")
    )
