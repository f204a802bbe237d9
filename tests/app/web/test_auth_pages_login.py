"""Browser pages through Flask's test client with real CSRF tokens: sign-up, login, `next`
(WB-6), logout (SE-1), the login guard, CSRF on every form (WB-1) and escaping (WB-7).

This part: sign-up, login and its `next`, and the login guard.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from authapp.auth.services import accounts
from tests.app.web.conftest import (
    alert,
    csrf_token,
    field_error,
    form_login,
    form_signup,
    input_tag,
    set_cookies,
    text,
)
from tests.conftest import PASSWORD


def hidden_next(page: str) -> str:
    match = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert match is not None, "no hidden next"
    return html.unescape(match.group(1))


def login_redirect_next(response: Any) -> str:
    """The `next` of a redirect to the login page."""
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login", response.headers["Location"]
    return parse_qs(location.query)["next"][0]


# Sign-up


def test_signup_form_lands_on_home_logged_in(client):
    response = form_signup(client, "Grace@Example.com", full_name="Grace Hopper")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    home = text(client.get("/"))
    assert '<dd data-testid="who">Grace@Example.com</dd>' in home
    assert "Welcome, Grace Hopper" in home


def test_signup_with_bad_input_shows_each_message_next_to_its_field(client):
    response = form_signup(
        client, "not an email", password="tiny-pw", full_name="Grace Hopper", username="x"
    )

    assert response.status_code == 422
    page = text(response)
    assert 'role="alert"' in page
    for name in ("email", "username"):
        assert field_error(page, name)
        tag = input_tag(page, name)
        assert 'aria-invalid="true"' in tag
        assert f"{name}-error" in tag  # aria-describedby
    assert "autofocus" in input_tag(page, "email")  # the first field in error
    assert "autofocus" not in input_tag(page, "username")
    assert 'value="not an email"' in input_tag(page, "email")
    assert 'value="x"' in input_tag(page, "username")
    assert 'value="Grace Hopper"' in input_tag(page, "full_name")
    assert "aria-invalid" not in input_tag(page, "full_name")
    assert "value=" not in input_tag(page, "password")
    assert "tiny-pw" not in page
    assert client.get_cookie("access_token") is None


def test_signup_with_a_short_password_says_why_on_the_password_field(client):
    """PW-1, PW-3: the message says why; the password is never echoed."""
    response = form_signup(client, "grace@example.com", password="tiny-pw", full_name="Grace")

    assert response.status_code == 422
    page = text(response)
    assert "15" in field_error(page, "password")
    tag = input_tag(page, "password")
    assert 'aria-invalid="true"' in tag
    assert "autofocus" in tag
    assert "value=" not in tag
    assert "tiny-pw" not in page
    assert 'value="grace@example.com"' in input_tag(page, "email")
    assert "aria-invalid" not in input_tag(page, "email")


def test_signup_focuses_the_first_field_in_error(client):
    response = form_signup(client, "grace@example.com", username="x", organization_name="o" * 101)

    assert response.status_code == 422
    page = text(response)
    assert "autofocus" in input_tag(page, "username")
    assert 'aria-invalid="true"' in input_tag(page, "organization_name")
    assert "autofocus" not in input_tag(page, "organization_name")
    assert "aria-invalid" not in input_tag(page, "email")
    assert 'value="grace@example.com"' in input_tag(page, "email")


def test_signup_with_a_taken_email_is_409_on_the_email_field(client, make_user):
    """EN-5: sign-up knowingly says the account exists."""
    make_user(email="ada@example.com")

    response = form_signup(client, "  ADA@example.com ", full_name="Ada")

    assert response.status_code == 409
    page = text(response)
    assert "already exists" in field_error(page, "email")
    assert 'aria-invalid="true"' in input_tag(page, "email")
    assert "autofocus" in input_tag(page, "email")
    assert 'value="Ada"' in input_tag(page, "full_name")
    assert PASSWORD not in page
    assert client.get_cookie("access_token") is None


# Login and `next`


def test_login_form_with_email_goes_to_a_local_next(client, make_user):
    make_user(email="ada@example.com")

    response = form_login(client, "ADA@example.com", next_path="/settings/password")

    assert response.status_code == 303
    assert response.headers["Location"] == "/settings/password"
    assert client.get("/settings/password").status_code == 200


def test_login_form_with_username(client, make_user):
    make_user(email="ada@example.com", username="ada")

    response = form_login(client, "Ada")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert '<dd data-testid="who">ada@example.com</dd>' in text(client.get("/"))


def test_a_local_next_with_a_query_survives_the_login_round_trip(client, make_user):
    """WB-6: the guard's `next` keeps the query, and the login page honours it."""
    make_user(email="ada@example.com")
    guarded = client.get("/settings/sessions?x=1")
    assert guarded.status_code == 302
    next_path = login_redirect_next(guarded)
    assert next_path == "/settings/sessions?x=1"

    page = client.get(guarded.headers["Location"])
    assert hidden_next(text(page)) == next_path
    response = client.post(
        "/login",
        data={
            "login": "ada@example.com",
            "password": PASSWORD,
            "next": hidden_next(text(page)),
            "csrf_token": csrf_token(client),
        },
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/settings/sessions?x=1"


# As they appear in a link's query string.
FOREIGN_NEXTS = [
    "//evil.example",
    "https://evil.example/x",
    "/%5Cevil",
    "/\\evil",
    "javascript:alert(1)",
    "/%0d%0aSet-Cookie",
    "%20/x",
    "/%09/evil.example",
]


@pytest.mark.parametrize("raw", FOREIGN_NEXTS)
def test_a_foreign_next_is_never_put_in_the_login_form(client, raw):
    """WB-6."""
    page = client.get(f"/login?next={raw}")

    assert page.status_code == 200
    assert hidden_next(text(page)) == "/"


@pytest.mark.parametrize("raw", FOREIGN_NEXTS)
def test_a_foreign_next_posted_to_login_ends_at_home(client, make_user, raw):
    """WB-6: even posted directly, the value decoded from the link goes nowhere but `/`."""
    make_user(email="ada@example.com")

    response = client.post(
        "/login",
        data={
            "login": "ada@example.com",
            "password": PASSWORD,
            "next": unquote(raw),
            "csrf_token": csrf_token(client),
        },
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("raw", FOREIGN_NEXTS)
def test_a_foreign_next_in_the_login_url_ends_at_home(client, make_user, raw):
    """WB-6: a form posted to /login?next=… (the query wins over the hidden field)."""
    make_user(email="ada@example.com")

    response = client.post(
        f"/login?next={raw}",
        data={"login": "ada@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)},
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_a_wrong_password_re_renders_401_with_the_generic_message(client, make_user):
    """EN-1: a wrong password and an unknown account read the same."""
    make_user(email="ada@example.com")

    wrong = form_login(client, "ada@example.com", "not the right passphrase at all")
    unknown = form_login(client, "nobody@example.com", "not the right passphrase at all")

    assert wrong.status_code == unknown.status_code == 401
    assert alert(text(wrong)) == alert(text(unknown)) == "The login or password is incorrect."
    for response in (wrong, unknown):
        page = text(response).lower()
        assert "not the right passphrase" not in page
        for leak in ("disabled", "not found", "no account", "unknown", "does not exist"):
            assert leak not in page
        assert "access_token" not in set_cookies(response)
    assert 'value="ada@example.com"' in input_tag(text(wrong), "login")
    assert "value=" not in input_tag(text(wrong), "password")
    assert client.get_cookie("access_token") is None


def test_a_disabled_account_with_the_right_password_is_403(app, client, make_user):
    """SE-4: `account_disabled` only after a correct password; a wrong one stays generic."""
    make_user(email="ada@example.com")
    with app.app_context():
        accounts.disable_user("ada@example.com")

    right = form_login(client, "ada@example.com")
    wrong = form_login(client, "ada@example.com", "not the right passphrase at all")

    assert right.status_code == 403
    assert alert(text(right)) == "This account is disabled."
    assert client.get_cookie("access_token") is None
    assert wrong.status_code == 401
    assert alert(text(wrong)) == "The login or password is incorrect."


# The login guard

SETTINGS_PAGES = [
    "/settings/profile",
    "/settings/password",
    "/settings/sessions",
    "/settings/api-keys",
    "/settings/members",
    "/settings/members?cursor=abc",
    "/settings/roles",
]


@pytest.mark.parametrize("path", SETTINGS_PAGES)
def test_a_settings_page_without_cookies_redirects_to_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert login_redirect_next(response) == path


@pytest.mark.parametrize("path", SETTINGS_PAGES)
def test_a_settings_page_with_a_forged_access_cookie_redirects_to_login(client, path):
    client.set_cookie("access_token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")

    response = client.get(path)

    assert response.status_code == 302
    assert login_redirect_next(response) == path
