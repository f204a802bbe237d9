"""Passkey fixtures: an account driven through the JSON API with a software authenticator
(tests/passkey_authenticator.py) that registers passkeys and answers login options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import AuditEvent, Passkey, PasskeyChallenge
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header
from tests.passkey_authenticator import Authenticator

SETTINGS_PASSKEYS = "/api/v1/settings/passkeys"
AUTH_PASSKEYS = "/api/v1/auth/passkeys"
LOGIN = "/api/v1/auth/login"


class Holder:
    """One account, logged in by password, and the authenticator in its owner's hand."""

    def __init__(
        self,
        client: FlaskClient,
        user: dict[str, Any],
        tokens: dict[str, Any],
        authenticator: Authenticator | None = None,
    ) -> None:
        self.client, self.user = client, user
        self.headers = auth_header(tokens["access_token"])
        self.authenticator = authenticator or Authenticator()

    def creation_options(self, password: str | None = PASSWORD, **kwargs: Any) -> Any:
        """POST /settings/passkeys/options, with the account's password unless told."""
        body = None if password is None else {"password": password}
        return self.client.post(
            f"{SETTINGS_PASSKEYS}/options", json=body, headers=self.headers, **kwargs
        )

    def submit(self, credential: Any, name: str | None = None, **kwargs: Any) -> Any:
        body: dict[str, Any] = {"credential": credential}
        if name is not None:
            body["name"] = name
        return self.client.post(SETTINGS_PASSKEYS, json=body, headers=self.headers, **kwargs)

    def register(self, name: str | None = None) -> dict[str, Any]:
        """A passkey made by the authenticator and kept by the app: its JSON."""
        options = self.creation_options()
        assert options.status_code == 200, options.json
        response = self.submit(self.authenticator.create(options.json["publicKey"]), name)
        assert response.status_code == 201, response.json
        return response.json["passkey"]

    def listed(self) -> list[dict[str, Any]]:
        response = self.client.get(SETTINGS_PASSKEYS, headers=self.headers)
        assert response.status_code == 200, response.json
        return response.json["passkeys"]

    def remove(self, passkey_id: str, password: str | None = None, **kwargs: Any) -> Any:
        body = None if password is None else {"password": password}
        return self.client.delete(
            f"{SETTINGS_PASSKEYS}/{passkey_id}", json=body, headers=self.headers, **kwargs
        )


# How an authenticator can be led to answer wrongly: the attribute it answers with, and the value.
MISLEADINGS = {
    "origin": ("origin", "https://evil.example"),  # a look-alike site asked it
    "rp_id": ("rp_id", "evil.example"),  # for another relying party
    "user_not_verified": ("user_verified", False),  # no PIN, no biometric
    "user_not_present": ("user_present", False),
}


def misled(authenticator: Authenticator, how: str) -> Authenticator:
    """`authenticator`, changed as MISLEADINGS says for `how` (any other `how`: unchanged)."""
    if how in MISLEADINGS:
        setattr(authenticator, *MISLEADINGS[how])
    return authenticator


def login_options(client: FlaskClient, **kwargs: Any) -> Any:
    return client.post(f"{AUTH_PASSKEYS}/options", **kwargs)


def request_options(client: FlaskClient) -> dict[str, Any]:
    response = login_options(client)
    assert response.status_code == 200, response.json
    return response.json["publicKey"]


def passkey_login(client: FlaskClient, credential: Any, **kwargs: Any) -> Any:
    return client.post(f"{AUTH_PASSKEYS}/login", json={"credential": credential}, **kwargs)


def assertion(client: FlaskClient, authenticator: Authenticator, **kwargs: Any) -> dict[str, Any]:
    """The authenticator's answer to fresh login options."""
    return authenticator.get(request_options(client), **kwargs)


def refused(response: Any, status: int = 401, code: str = "invalid_passkey") -> None:
    """The error envelope with `code`."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert body["request_id"]


def events(app: Flask, name: str) -> list[AuditEvent]:
    with app.app_context():
        found = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.created_at)
        ).all()
        db.session.expunge_all()
        return list(found)


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context():
        statement = sa.select(sa.func.count()).select_from(model)
        for criterion in where:
            statement = statement.where(criterion)
        return int(db.session.scalar(statement) or 0)


def passkeys_of(app: Flask, user_id: str) -> int:
    return count(app, Passkey, Passkey.user_id == user_id)


def challenges(app: Flask) -> int:
    return count(app, PasskeyChallenge)


def set_clock(client: FlaskClient, seconds: int) -> None:
    """Move the app's testing clock (AUTHAPP_ENV=testing) `seconds` ahead of the wall clock."""
    assert client.post("/_testing/clock", json={"offset_seconds": seconds}).status_code == 200


@pytest.fixture
def holder(
    client: FlaskClient,
    make_user: Callable[..., dict[str, Any]],
    login: Callable[[dict[str, Any]], dict[str, Any]],
) -> Holder:
    user = make_user()
    return Holder(client, user, login(user))


@pytest.fixture
def make_holder(
    client: FlaskClient,
    make_user: Callable[..., dict[str, Any]],
    login: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[..., Holder]:
    """Another account (`email=...`), logged in, with an authenticator of its own."""

    def make(**fields: Any) -> Holder:
        user = make_user(**fields)
        return Holder(client, user, login(user))

    return make
