"""Signing in with a GitHub-style OAuth2 provider (docs/federation.md "GitHub"), against a
server speaking GitHub's protocol (tests/github_peer.py): no ID token, the account is the API's
numeric user id, the address the primary one of /user/emails, confirmed only when verified."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import AuditEvent, Identity, User
from authapp.platform.extensions import db
from tests.app.federation.conftest import GITHUB_CALLBACK, come_back, start
from tests.github_peer import GithubServer, sign_in_at_github


def _round(client: FlaskClient, login: str):
    left = start(client, name="github")
    assert left.status_code == 303, left.get_data(as_text=True)
    url = sign_in_at_github(left.location, login, redirect_prefix=GITHUB_CALLBACK)
    return come_back(client, url)


def _account(app: Flask, email: str) -> tuple[User | None, list[str]]:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email_normalized == email))
        subjects = list(
            db.session.scalars(
                sa.select(Identity.subject).where(Identity.user_id == (user.id if user else None))
            )
        )
        db.session.expunge_all()
        return user, subjects


def test_a_github_sign_in_makes_an_account_named_by_githubs_numeric_id(
    app: Flask, client: FlaskClient, github: GithubServer
):
    login = f"octo-{uuid.uuid4().hex[:8]}"

    answer = _round(client, login)

    assert answer.status_code == 303
    assert client.get("/api/v1/auth/me").json["user"]["email"] == f"{login}@example.com"
    user, subjects = _account(app, f"{login}@example.com")
    assert user is not None
    assert user.email_verified
    assert subjects == [str(github.account(login)["id"])]


def test_an_unverified_github_address_makes_an_unconfirmed_account(app: Flask, client: FlaskClient):
    login = f"unverified-{uuid.uuid4().hex[:8]}"

    _round(client, login)

    user, _ = _account(app, f"{login}@example.com")
    assert user is not None
    assert not user.email_verified


def test_a_spent_github_code_is_refused(app: Flask, client: FlaskClient):
    login = f"octo-{uuid.uuid4().hex[:8]}"
    left = start(client, name="github")
    with client.session_transaction() as session:
        flow = dict(session["federation_flow"])
    url = sign_in_at_github(left.location, login, redirect_prefix=GITHUB_CALLBACK)
    assert come_back(client, url).status_code == 303
    with client.session_transaction() as session:
        session["federation_flow"] = flow

    again = come_back(app.test_client(), url)  # another browser: no flow at all
    with_flow = come_back(client, url)  # the same flow replayed: GitHub refuses the code

    assert again.status_code == 401
    assert with_flow.status_code == 401
    with app.app_context():
        whys = db.session.scalars(
            sa.select(AuditEvent.data["why"].as_string()).where(AuditEvent.event == "login.failed")
        )
        assert "token: bad_verification_code" in list(whys)
