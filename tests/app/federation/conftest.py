"""Federation fixtures: a real OpenID Connect provider (tests/oidc_peer.py, Node's oidc-provider)
for this worker's session, and the app configured to sign in with it as `idp`.

The browser is the Flask test client (host `localhost`); the person's walk through the
provider's pages is plain HTTP (sign_in_at_provider), and the callback URL the provider sends
the browser to is handed back to the test client, as a browser would follow it."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.platform.federation_settings import providers
from tests.app.web.conftest import csrf_token
from tests.conftest import marker_settings, seeded_app
from tests.github_peer import ACCESS_TOKEN, AUTHORIZE, GithubServer, github_server
from tests.oidc_peer import OidcProvider, oidc_provider, sign_in_at_provider

CLIENT_ID, CLIENT_SECRET = "authapp-tests", "a client secret of at least thirty-two characters"
OTHER_CLIENT_ID = "another-service"  # a client of the same provider: its tokens are not ours
CALLBACK = "http://localhost/login/with/idp/callback"
GITHUB_CALLBACK = "http://localhost/login/with/github/callback"
APP_CALLBACK = "http://localhost:5173/auth/callback"  # a single-page client's (the JSON flow)


@pytest.fixture(scope="session")
def provider() -> Iterator[OidcProvider]:
    clients = [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [CALLBACK, APP_CALLBACK],
        },
        {
            "client_id": OTHER_CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": ["http://localhost/elsewhere"],
        },
    ]
    with oidc_provider(clients) as started:
        yield started


@pytest.fixture(scope="session")
def github() -> Iterator[GithubServer]:
    with github_server("github-client", CLIENT_SECRET) as started:
        yield started


def provider_settings(issuer: str, github_url: str | None = None) -> dict[str, Any]:
    """FEDERATION_PROVIDERS parsed as the environment's would be: `idp` (OpenID Connect, this
    client) and, with `github_url`, `github` (GitHub-style OAuth2 at that address)."""
    configured: dict[str, Any] = {
        "idp": {
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "display_name": "Test IdP",
        }
    }
    if github_url:
        configured["github"] = {
            "kind": "github",
            "client_id": "github-client",
            "client_secret": CLIENT_SECRET,
            "display_name": "GitHub",
            "authorize_url": github_url + AUTHORIZE,
            "token_url": github_url + ACCESS_TOKEN,
            "api_url": github_url,
        }
    return providers(json.dumps(configured))


@pytest.fixture
def app(
    database_url: str,
    authapp_mail_dir: Path,
    provider: OidcProvider,
    github: GithubServer,
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    settings = {
        "MAIL_DIR": str(authapp_mail_dir),
        "FEDERATION_PROVIDERS": provider_settings(provider.issuer, github.base_url),
        "FEDERATION_APP_REDIRECTS": [APP_CALLBACK],
        **marker_settings(request),
    }
    with seeded_app(database_url, **settings) as app:
        yield app


CONTINUE = re.compile(r'<a href="([^"]+)" data-testid="continue">')


def start(client: FlaskClient, next_path: str | None = None, name: str = "idp") -> TestResponse:
    """The login page's "Log in with Test IdP" (or another provider's) button, followed to the
    page that leaves for the provider: its `location` is the provider's URL then."""
    data = {"csrf_token": csrf_token(client, "/login")}
    if next_path is not None:
        data["next"] = next_path
    return leaving(client, client.post(f"/login/with/{name}", data=data))


def leaving(client: FlaskClient, answer: TestResponse) -> TestResponse:
    """A provider form's answer (303 to the leaving page) as the browser goes on: the leaving
    page, given the provider's URL (its link and refresh) as `location`, and 303."""
    if answer.status_code != 303 or "/continue" not in (answer.location or ""):
        return answer
    page = client.get(answer.location)
    found = CONTINUE.search(page.get_data(as_text=True))
    assert page.status_code == 200
    assert found, page.get_data(as_text=True)
    url = html.unescape(found.group(1))
    assert f'content="0; url={found.group(1)}"' in page.get_data(as_text=True)
    page.status_code, page.headers["Location"] = 303, url
    return page


def sign_in(client: FlaskClient, login: str, next_path: str | None = None) -> TestResponse:
    """The whole round: the button, the provider's pages as `login`, the way back."""
    left = start(client, next_path)
    assert left.status_code == 303, left.get_data(as_text=True)
    return come_back(client, sign_in_at_provider(left.location, login, redirect_prefix=CALLBACK))


def come_back(client: FlaskClient, callback_url: str) -> TestResponse:
    parts = urlsplit(callback_url)
    return client.get(f"{parts.path}?{parts.query}")
