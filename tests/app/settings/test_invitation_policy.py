"""Invitations and SIGNUP_MODE (`invite`: sign-up only through an invitation; `closed` admits
invitations too), hostile input on the invitation routes (IN-2), their OpenAPI entries, and
the main path on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import flask_migrate
import pytest
from flask import Flask

from authapp import create_app
from authapp.cli.seed import seed_database
from authapp.delivery import offload
from authapp.platform.extensions import db
from authapp.testing.mails import Mailbox
from tests.app.settings.conftest import Account, Tenant
from tests.app.settings.invitations import (
    ACCEPT,
    INVITATIONS,
    SUBJECT,
    invited,
    member_roles,
    sign_up_through,
)
from tests.app.web.conftest import submit
from tests.conftest import PASSWORD, TEST_SECRETS, auth_header, confirm_email


@pytest.mark.config(SIGNUP_MODE="invite")
def test_invite_mode_refuses_sign_up_but_an_invitation_creates_the_account(
    client, tenants, mailbox, make_user
):
    # `tenants` signs its owners up, which invite mode refuses: the owners come from operators.
    refused = client.post(
        "/api/v1/auth/signup", json={"email": "x@example.com", "password": PASSWORD}
    )
    token = invited(client, mailbox, tenants["acme"]["owner"], "x@example.com")

    response = sign_up_through(client, token)

    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "signup_closed"
    assert "invitation" in refused.json["error"]["message"]
    assert response.status_code == 201, response.json
    assert member_roles(client, tenants["acme"], "x@example.com") == ["member"]


@pytest.mark.config(SIGNUP_MODE="closed")
def test_closed_mode_admits_invitations(client, tenants, mailbox):
    token = invited(client, mailbox, tenants["acme"]["owner"], "y@example.com")

    assert sign_up_through(client, token).status_code == 201


@pytest.fixture
def tenants(app, client, make_user, login):
    """Acme's owner made by an operator (sign-up may be closed here)."""
    owner = make_user(email="owner@acme.example", organization="Acme", role_names=("owner",))
    pair = login(owner)
    acme = Tenant(id=pair["user"]["organization"]["id"], name="Acme")
    acme.accounts["owner"] = Account(
        owner["id"], owner["email"], pair["access_token"], pair["refresh_token"]
    )
    return {"acme": acme}


HOSTILE_INVITES = [
    {"email": "ada\ud800@example.com"},
    {"email": "ada\x00@example.com"},
    {"email": "ada\n@example.com"},
    {"email": "a" * 10_000 + "@example.com"},
    {"email": {"nested": {"deeper": ["x"]}}},
    {"email": "ada@example.com", "roles": "admin"},
    {"email": "ada@example.com", "roles": [["admin"]]},
    {"email": "ada@example.com", "roles": ["a\x07b"]},
    {"email": "ada@example.com", "roles": ["r" * 10_000]},
    {"email": "ada@example.com", "is_admin": True},
    [],
]


@pytest.mark.parametrize("body", HOSTILE_INVITES)
def test_hostile_invitations_are_422(client, tenants, body):
    response = client.post(INVITATIONS, json=body, headers=tenants["acme"]["owner"].headers)

    assert response.status_code == 422, response.json


HOSTILE_ACCEPTS = [
    {"token": {"nested": [1, {"x": None}]}},
    {"token": "t" * 10_000},
    {"token": ""},
    {"token": None},
    {"token": "x" * 43, "password": PASSWORD, "full_name": "a\x00b"},
    {"token": "x" * 43, "password": PASSWORD, "username": "\ud800\ud800\ud800"},
    {"token": "x" * 43, "full_name": "Only with a password"},
    {"token": "x" * 43, "password": PASSWORD, "email": "other@example.com"},
    {"token": "x" * 43, "password": "p" * 10_000},
]


@pytest.mark.parametrize("body", HOSTILE_ACCEPTS)
def test_hostile_accepts_are_422(client, body):
    response = client.post(ACCEPT, json=body)

    assert response.status_code == 422, response.json


def test_the_openapi_document_lists_the_invitation_answers(client):
    paths = client.get("/api/openapi.json").json["paths"]

    assert {"200", "201", "409", "403"} <= set(
        paths["/api/v1/settings/invitations"]["post"]["responses"]
    )
    accept = paths["/api/v1/invitations/accept"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "409", "422", "429"} <= set(accept)
    assert "404" in paths["/api/v1/settings/invitations/{invitation_id}"]["delete"]["responses"]


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "AUTHAPP_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'authapp.db'}",
            "BCRYPT_ROUNDS": 4,
            "RATELIMIT_ENABLED": False,
            "OUTBOX_SWEEP_SECONDS": 0,
            "MAIL_DIR": str(tmp_path / "mail"),
            **TEST_SECRETS,
        }
    )
    with app.app_context():
        flask_migrate.upgrade()
        seed_database()
    yield app
    offload.shutdown(app)
    with app.app_context():
        db.engine.dispose()


def test_invite_renew_and_accept_on_sqlite(sqlite_app, tmp_path):
    client, mailbox = sqlite_app.test_client(), Mailbox(sqlite_app, tmp_path / "mail")
    owner = client.post(
        "/api/v1/auth/signup",
        json={"email": "owner@acme.example", "password": PASSWORD, "organization_name": "Acme"},
    ).json
    confirm_email(sqlite_app, "owner@acme.example")
    headers = auth_header(owner["access_token"])
    assert (
        client.post(INVITATIONS, json={"email": "n@example.com"}, headers=headers).status_code
        == 201
    )
    # The first link's mail goes: the two mails leave on pool threads in either order, and the
    # mailbox orders by arrival, so "the last" could be the voided one.
    mailbox.clear()
    again = client.post(
        INVITATIONS, json={"email": "n@example.com", "roles": ["admin"]}, headers=headers
    )
    assert again.status_code == 200, again.json
    [link] = [
        x for x in mailbox.links(mailbox.last(to="n@example.com", subject=SUBJECT)) if "token=" in x
    ]
    token = parse_qs(urlsplit(link).query)["token"][0]

    joined = client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    reused = client.post(ACCEPT, json={"token": token, "password": PASSWORD})

    assert joined.status_code == 201, joined.json
    assert joined.json["user"]["organization"]["name"] == "Acme"
    assert joined.json["user"]["roles"] == ["admin"]
    assert reused.status_code == 400, reused.json
    assert client.get(INVITATIONS, headers=headers).json == {"invitations": []}


@pytest.mark.config(
    RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_SIGNUP="2/minute"
)
def test_accepting_is_limited_per_client_with_one_count_for_the_api_and_the_page(client):
    bad = {"token": "x" * 43, "password": PASSWORD}

    page = submit(client, "/invitations/accept", bad, page="/login")
    api = [client.post(ACCEPT, json=bad) for _ in range(2)]

    assert page.status_code == 400
    assert [response.status_code for response in api] == [400, 429]
    assert api[1].json["error"]["code"] == "rate_limited"
    assert "Retry-After" in api[1].headers
