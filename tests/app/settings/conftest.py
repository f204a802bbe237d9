"""Two organizations with an account of every role, for access-control tests (AC-1, AC-2).

`tenants["acme"]["admin"].headers` is a bearer header for Acme's admin. Roles per tenant:
owner (signed up with organization_name), admin, member, and `auditor`, a custom role holding
`users:read` and `audit:read`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth.services import accounts
from tests.conftest import PASSWORD, auth_header, confirm_email

SETTINGS = "/api/v1/settings"
ROLES = ("owner", "admin", "member", "auditor")
BUILTIN_PERMISSIONS = (
    "api_keys:manage",
    "audit:read",
    "org:manage",
    "roles:manage",
    "tokens:introspect",
    "users:manage",
    "users:read",
)
AUDITOR_PERMISSIONS = ["audit:read", "users:read"]


@dataclass
class Account:
    id: str
    email: str
    access_token: str
    refresh_token: str
    password: str = PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return auth_header(self.access_token)


@dataclass
class Tenant:
    id: str
    name: str
    accounts: dict[str, Account] = field(default_factory=dict)
    auditor_role_id: str = ""

    def __getitem__(self, role: str) -> Account:
        return self.accounts[role]


def _log_in(client: FlaskClient, email: str) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", json={"login": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return response.json


def _tenant(app: Flask, client: FlaskClient, name: str) -> Tenant:
    slug = name.lower()
    owner_email = f"owner@{slug}.example"
    signed_up = client.post(
        "/api/v1/auth/signup",
        json={"email": owner_email, "password": PASSWORD, "organization_name": name},
    )
    assert signed_up.status_code == 201, signed_up.json
    owner = signed_up.json
    confirm_email(app, owner_email)
    tenant = Tenant(id=owner["user"]["organization"]["id"], name=name)
    tenant.accounts["owner"] = Account(
        owner["user"]["id"], owner_email, owner["access_token"], owner["refresh_token"]
    )
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "auditor", "permissions": AUDITOR_PERMISSIONS},
        headers=tenant["owner"].headers,
    )
    assert role.status_code == 201, role.json
    tenant.auditor_role_id = role.json["id"]
    for role_name in ("admin", "member", "auditor"):
        email = f"{role_name}@{slug}.example"
        with app.app_context():
            accounts.create_user(
                email=email, password=PASSWORD, organization=tenant.id, role_names=(role_name,)
            )
        pair = _log_in(client, email)
        tenant.accounts[role_name] = Account(
            pair["user"]["id"], email, pair["access_token"], pair["refresh_token"]
        )
    return tenant


@pytest.fixture
def tenants(app: Flask, client: FlaskClient) -> dict[str, Tenant]:
    """Acme and Globex, each with an owner, an admin, a member and an auditor."""
    return {slug: _tenant(app, client, slug.capitalize()) for slug in ("acme", "globex")}


@pytest.fixture
def make_api_key(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """`make_api_key(tenant, scopes)`: created by the tenant's owner; the 201 body (with `key`)."""

    def make(tenant: Tenant, scopes: list[str], **body: Any) -> dict[str, Any]:
        response = client.post(
            f"{SETTINGS}/api-keys",
            json={"name": "test key", "scopes": scopes, **body},
            headers=tenant["owner"].headers,
        )
        assert response.status_code == 201, response.json
        return response.json

    return make


@pytest.fixture
def join(make_user: Callable[..., Any], login: Callable[..., Any]) -> Callable[..., Account]:
    """`join(tenant, email, *roles)`: a new logged-in account of the tenant."""

    def add(tenant: Tenant, email: str, *roles: str) -> Account:
        user = make_user(email=email, organization=tenant.id, role_names=roles or ("member",))
        pair = login(user)
        return Account(user["id"], email, pair["access_token"], pair["refresh_token"])

    return add


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def wait_for_a_lock_waiter(engine: sa.Engine) -> None:
    """Returns once some PostgreSQL session waits on a lock (a PATCH queued behind another)."""
    with engine.connect() as observer:
        for _ in range(200):
            waiting = observer.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            if waiting.scalar():
                return
            observer.rollback()
            threading.Event().wait(0.05)
    pytest.fail("the PATCH never waited on the organization's lock")
