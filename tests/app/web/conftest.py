"""Helpers for browser-form tests: real CSRF tokens read from the pages, logins through the
real forms, and the Set-Cookie headers as a browser would read them; the settings pages read
and asserted; ada's browser with and without MFA (test_mfa_pages_*.py), and a browser per role
of the two tenants (test_settings_pages_*.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.app.settings.conftest import Tenant
from tests.conftest import PASSWORD

CSRF_INPUT = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
# The one kind of script a page may carry: a file of authapp's own, never inline code.
OWN_SCRIPT = re.compile(r'<script src="/static/[a-z]+\.js" defer></script>')


def csrf_token(client: FlaskClient, path: str = "/login", **get: Any) -> str:
    """GET `path` and read the hidden csrf_token of its first form."""
    response = client.get(path, **get)
    assert response.status_code == 200, (path, response.status_code)
    match = CSRF_INPUT.search(response.get_data(as_text=True))
    assert match is not None, f"no csrf_token on {path}"
    return match.group(1)


def submit(
    client: FlaskClient,
    path: str,
    data: Mapping[str, Any] | None = None,
    *,
    page: str | None = None,
    **post: Any,
) -> TestResponse:
    """POST a form the way a browser does: with the csrf_token of `page` (default: `path`)."""
    token = csrf_token(client, page or path, **post)
    return client.post(path, data={**(data or {}), "csrf_token": token}, **post)


def form_login(
    client: FlaskClient, login: str, password: str = PASSWORD, *, next_path: str | None = None
) -> TestResponse:
    page = "/login" if next_path is None else f"/login?next={next_path}"
    data = {"login": login, "password": password}
    if next_path is not None:
        data["next"] = next_path
    return submit(client, "/login", data, page=page)


def form_signup(client: FlaskClient, email: str, **fields: str) -> TestResponse:
    return submit(client, "/signup", {"email": email, "password": PASSWORD, **fields})


def cookie(client: FlaskClient, name: str) -> str:
    found = client.get_cookie(name)
    assert found is not None, f"no {name} cookie"
    return found.value


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def set_cookies(response: TestResponse) -> dict[str, dict[str, str | None]]:
    """The response's Set-Cookie headers by name: {"value": …, "httponly": None, …}, with the
    attribute names lowercased (None for flags)."""
    parsed: dict[str, dict[str, str | None]] = {}
    for header in response.headers.getlist("Set-Cookie"):
        pair, *attributes = header.split(";")
        name, _, value = pair.strip().partition("=")
        fields: dict[str, str | None] = {"value": value}
        for attribute in attributes:
            key, sep, attribute_value = attribute.strip().partition("=")
            fields[key.lower()] = attribute_value if sep else None
        parsed[name] = fields
    return parsed


def set_clock(client: FlaskClient, seconds: int) -> None:
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200, response.json


@pytest.fixture
def logged_in_client(client: FlaskClient, make_user: Callable[..., dict[str, Any]]) -> FlaskClient:
    """`client`, logged in as ada@example.com through the real login form."""
    user = make_user(email="ada@example.com")
    response = form_login(client, user["email"])
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


# Readers of rendered pages


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def input_tag(body: str, name: str) -> str:
    """The `<input>` element whose id is `name`."""
    match = re.search(rf'<input id="{name}"[^>]*>', body)
    assert match is not None, f"no input {name}"
    return match.group(0)


def field_error(body: str, name: str) -> str:
    """The message shown next to field `name`."""
    match = re.search(rf'<p class="error" id="{name}-error">([^<]*)</p>', body)
    assert match is not None, f"no error message for {name}"
    return html.unescape(match.group(1))


def alert(body: str) -> str:
    """The error box at the top of a form."""
    match = re.search(r'<div class="alert" role="alert"><p>([^<]*)</p></div>', body)
    assert match is not None, "no error box"
    return html.unescape(match.group(1))


def notice(body: str) -> str:
    """The flashed success message."""
    match = re.search(r'<p class="notice" role="status">([^<]*)</p>', body)
    assert match is not None, "no flash message"
    return html.unescape(match.group(1))


# Settings pages (test_settings_pages_*.py, test_mfa_pages_*.py): a browser of our own, pages
# read and asserted.
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def open_browser(
    app: Flask, login: str, password: str = PASSWORD, agent: str = FIREFOX
) -> FlaskClient:
    """A new cookie jar, logged in through the real /login form."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    response = submit(client, "/login", {"login": login, "password": password})
    assert response.status_code == 303, text(response)
    assert client.get_cookie("access_token") is not None
    return client


def assert_page(response: TestResponse, status: int = 200) -> str:
    """WB-4: an HTML page that is never cached and runs under the CSP without inline code (its
    only scripts are authapp's own files, such as the passkey buttons' passkeys.js)."""
    body = text(response)
    assert response.status_code == status, body
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in OWN_SCRIPT.sub("", body).lower()
    assert "<style" not in body.lower()
    assert " style=" not in body.lower()
    return body


def assert_redirect(response: TestResponse, location: str) -> None:
    assert response.status_code == 303, text(response)
    assert response.headers["Location"] == location


@pytest.fixture
def ada(make_user: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_user(email="ada@example.com")


@pytest.fixture
def ada_browser(app: Flask, ada: dict[str, Any]) -> FlaskClient:
    """A cookie jar logged in as ada through the /login form (MFA still off)."""
    client = app.test_client()
    response = form_login(client, ada["email"])
    assert response.status_code == 303, text(response)
    return client


@pytest.fixture
def with_mfa(ada_browser: FlaskClient) -> tuple[FlaskClient, str, list[str]]:
    """ada with MFA on (set up through the forms); (her browser, the key, the recovery codes)."""
    from tests.app.web.mfa_pages import enrol  # it imports this module's helpers

    return (ada_browser, *enrol(ada_browser))


@pytest.fixture
def as_role(app: Flask, tenants: dict[str, Tenant]) -> Callable[[str], FlaskClient]:
    """`as_role("owner")`: a browser logged in as that Acme account (`tenants`: the module's
    alias of tests/app/settings's fixture)."""
    return lambda role: open_browser(app, tenants["acme"][role].email)
