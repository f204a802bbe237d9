"""Joining an organization from an invitation by signing in with an identity provider
(docs/federation.md "Invitations"): the invited address's account, linked to that identity,
without a password, in every SIGNUP_MODE (the organization chose to admit the person)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import Identity, Membership, User
from authapp.platform.extensions import db
from tests.app.federation.conftest import CALLBACK, come_back, leaving
from tests.app.settings.invitations import INVITATIONS, mailed_token
from tests.app.web.conftest import csrf_token
from tests.conftest import PASSWORD, auth_header
from tests.oidc_peer import sign_in_at_provider


def _invited(client: FlaskClient, make_user, login, mailbox, email: str) -> str:  # noqa: ANN001
    inviter = make_user(
        email=f"boss-{uuid.uuid4().hex[:8]}@example.com", permissions=["users:manage"]
    )
    tokens = login({"email": inviter.email, "password": PASSWORD})
    sent = client.post(
        INVITATIONS, json={"email": email}, headers=auth_header(tokens["access_token"])
    )
    assert sent.status_code in (200, 201), sent.json
    return mailed_token(mailbox, email)


def _join_with_provider(client: FlaskClient, token: str, login_name: str):
    page = f"/invitations/accept?token={token}"
    assert "Join with Test IdP" in client.get(page).get_data(as_text=True)
    left = leaving(
        client,
        client.post(
            "/invitations/accept/with/idp",
            data={"token": token, "csrf_token": csrf_token(client, page)},
        ),
    )
    assert left.status_code == 303, left.get_data(as_text=True)
    back = come_back(
        client, sign_in_at_provider(left.location, login_name, redirect_prefix=CALLBACK)
    )
    assert back.status_code == 303, back.get_data(as_text=True)
    return client.get(back.location)


@pytest.mark.config(SIGNUP_MODE="invite")
def test_an_invited_newcomer_joins_with_the_provider(
    app: Flask, client: FlaskClient, make_user, login, mailbox
):
    email = f"invited-{uuid.uuid4().hex[:8]}@example.com"
    token = _invited(client, make_user, login, mailbox, email)
    login_name = f"someone-{uuid.uuid4().hex[:8]}"  # another address at the provider

    joined = _join_with_provider(client, token, login_name)

    assert joined.status_code == 303
    assert client.get("/api/v1/auth/me").json["user"]["email"] == email
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email_normalized == email))
        assert user is not None
        assert not user.has_password
        assert user.email_verified  # the invitation's link proved the invited mailbox
        subjects = db.session.scalars(
            sa.select(Identity.subject).where(Identity.user_id == user.id)
        )
        assert list(subjects) == [login_name]
        memberships = db.session.scalars(sa.select(Membership).where(Membership.user_id == user.id))
        assert len(list(memberships)) == 1


@pytest.mark.config(SIGNUP_MODE="invite")
def test_an_identity_that_has_an_account_cannot_take_an_invitation_for_a_new_one(
    app: Flask, client: FlaskClient, make_user, login, mailbox
):
    from tests.app.federation.conftest import sign_in

    login_name = f"known-{uuid.uuid4().hex[:8]}"
    app.config["SIGNUP_MODE"] = "open"  # the identity's own account, made before
    assert sign_in(app.test_client(), login_name).status_code == 303
    app.config["SIGNUP_MODE"] = "invite"
    email = f"invited-{uuid.uuid4().hex[:8]}@example.com"
    token = _invited(client, make_user, login, mailbox, email)

    answer = _join_with_provider(client, token, login_name)

    page = answer.get_data(as_text=True)
    assert answer.status_code == 409
    assert "already has an account here" in page
    assert "Create my account and join" in page  # the invitation stands, unspent
    with app.app_context():
        assert db.session.scalar(sa.select(User).where(User.email_normalized == email)) is None
