"""Linking an identity at a provider to an account from the security page, and unlinking it
(docs/federation.md "Linking"), against the real provider: only the logged-in owner links, with
the password again, an identity whose address the provider vouches for; the owner is mailed;
the last way to log in stays."""

from __future__ import annotations

import uuid

import pyotp
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import AuditEvent, Identity, User
from authapp.platform.extensions import db
from tests.app.federation.conftest import CALLBACK, come_back, leaving, sign_in
from tests.app.web.conftest import csrf_token, form_login
from tests.conftest import PASSWORD, auth_header
from tests.oidc_peer import sign_in_at_provider

SECURITY = "/settings/security"


def _name(prefix: str = "linked") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _connect(client: FlaskClient, password: str | None = PASSWORD):
    data = {"csrf_token": csrf_token(client, SECURITY)}
    if password is not None:
        data["identity_password"] = password
    return leaving(client, client.post(f"{SECURITY}/identities/idp/connect", data=data))


def _link(client: FlaskClient, login: str):
    """Connect on the security page, sign in at the provider as `login`, come back."""
    left = _connect(client)
    assert left.status_code == 303, left.get_data(as_text=True)
    return come_back(client, sign_in_at_provider(left.location, login, redirect_prefix=CALLBACK))


def _identities(app: Flask, user_id: str) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(Identity.provider, Identity.subject).where(Identity.user_id == user_id)
        )
        return [(provider, subject) for provider, subject in rows]


def _events(app: Flask, name: str) -> list[dict]:
    with app.app_context():
        return [
            dict(d)
            for d in db.session.scalars(
                sa.select(AuditEvent.data)
                .where(AuditEvent.event == name)
                .order_by(AuditEvent.created_at, AuditEvent.id)
            )
        ]


def test_the_owner_links_an_identity_and_logs_in_with_it(
    app: Flask, client: FlaskClient, make_user, mailbox
):
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)
    login = _name()

    back = _link(client, login)

    assert back.status_code == 303
    assert back.location == SECURITY
    page = client.get(SECURITY).get_data(as_text=True)
    assert "Test IdP connected: you can log in with it now." in page
    assert f"{login}@example.com" in page
    assert _identities(app, owner.id) == [("idp", login)]
    mail = mailbox.last(to=owner.email)
    assert mail["Subject"] == "The sign-in providers of your account changed"
    assert "connected to" in mailbox.text(mail)

    browser = app.test_client()
    assert sign_in(browser, login).status_code == 303
    assert browser.get("/api/v1/auth/me").json["user"]["id"] == owner.id


def test_connecting_asks_for_the_password_again(app: Flask, client: FlaskClient, make_user):
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)

    for password in ("wrong password", None):
        answer = _connect(client, password)
        assert answer.status_code == 422
        assert "federation_flow" not in _session(client)
    assert len(_events(app, "identity.link_failed")) == 2


def test_an_identity_whose_address_the_provider_did_not_confirm_is_not_linked(
    app: Flask, client: FlaskClient, make_user
):
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)

    back = _link(client, _name("unverified"))

    assert "has not confirmed the email address" in _follow(client, back)
    assert _identities(app, owner.id) == []


def test_an_identity_linked_to_another_account_stays_there(
    app: Flask, client: FlaskClient, make_user
):
    login = _name()
    assert sign_in(app.test_client(), login).status_code == 303  # its own account now
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)

    back = _link(client, login)

    assert "connected to another account" in _follow(client, back)
    assert _identities(app, owner.id) == []


def test_the_way_back_must_reach_the_session_that_left(app: Flask, client: FlaskClient, make_user):
    """Logged out (or another account logged in) meanwhile: the link flow links nothing."""
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)
    left = _connect(client)
    flow = _session(client)["federation_flow"]
    client.post("/logout", data={"csrf_token": csrf_token(client, SECURITY)})
    other = make_user(email=f"{_name('other')}@example.com")
    form_login(client, other.email)
    with client.session_transaction() as session:  # the flow survived in this browser
        session["federation_flow"] = flow
    url = sign_in_at_provider(left.location, _name(), redirect_prefix=CALLBACK)

    come_back(client, url)

    assert _identities(app, owner.id) == _identities(app, other.id) == []
    assert _events(app, "login.failed")[-1]["why"] == "not_the_owner"


def test_the_last_way_to_log_in_cannot_be_disconnected(app: Flask, client: FlaskClient, mailbox):
    login = _name()
    sign_in(client, login)  # an account without a password, by the provider only
    [identity_id] = _identity_ids(app, login)

    refused = _remove(client, identity_id)

    assert refused.status_code == 409
    assert "last way to log in" in refused.get_data(as_text=True)
    assert len(_identity_ids(app, login)) == 1


def test_a_second_way_lets_the_identity_go(app: Flask, client: FlaskClient, make_user, mailbox):
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)
    login = _name()
    _link(client, login)
    [identity_id] = _identity_ids(app, login)

    removed = _remove(client, identity_id)

    assert removed.status_code == 303
    assert _identity_ids(app, login) == []
    assert "disconnected from" in mailbox.text(mailbox.last(to=owner.email))
    assert _events(app, "identity.unlinked")[-1]["provider"] == "idp"


def test_another_accounts_identity_cannot_be_removed(app: Flask, client: FlaskClient, make_user):
    login = _name()
    sign_in(app.test_client(), login)
    [theirs] = _identity_ids(app, login)
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)

    assert _remove(client, theirs).status_code == 404
    assert _identity_ids(app, login) == [theirs]


def test_a_linked_account_with_mfa_asks_for_its_code(app: Flask, client: FlaskClient, make_user):
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)
    login = _name()
    _link(client, login)
    secret = pyotp.random_base32()
    with app.app_context():
        from authapp.security import secretbox

        user = db.session.get_one(User, owner.id)
        user.mfa_secret, user.mfa_enabled = secretbox.seal(secret), True
        db.session.commit()

    browser = app.test_client()
    answer = sign_in(browser, login)

    assert answer.status_code == 303
    assert answer.location == "/login/code"
    assert browser.get("/api/v1/auth/me").status_code == 401
    code = browser.post(
        "/login/code",
        data={
            "totp_code": pyotp.TOTP(secret).now(),
            "csrf_token": csrf_token(browser, "/login/code"),
        },
    )
    assert code.status_code == 303
    assert browser.get("/api/v1/auth/me").json["user"]["id"] == owner.id
    assert _events(app, "login.succeeded")[-1]["method"] == "federated"  # not the code's page


def test_a_disabled_account_is_not_logged_in_by_its_identity(app: Flask, client: FlaskClient):
    login = _name()
    sign_in(client, login)
    with app.app_context():
        db.session.execute(
            sa.update(User)
            .where(User.email_normalized == f"{login}@example.com")
            .values(is_active=False)
        )
        db.session.commit()

    answer = sign_in(app.test_client(), login)

    assert answer.status_code == 403
    assert "disabled" in answer.get_data(as_text=True)


def _identity_ids(app: Flask, subject: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Identity.id).where(Identity.subject == subject)))


def _remove(client: FlaskClient, identity_id: str):
    token = csrf_token(client, SECURITY)
    return client.post(f"{SECURITY}/identities/{identity_id}/remove", data={"csrf_token": token})


def _follow(client: FlaskClient, answer) -> str:  # noqa: ANN001
    assert answer.status_code == 303, answer.status_code
    return client.get(answer.location).get_data(as_text=True)


def _session(client: FlaskClient) -> dict:
    with client.session_transaction() as session:
        return dict(session)


def test_the_export_lists_the_linked_identities(app: Flask, client: FlaskClient, make_user, login):
    owner = make_user(email=f"{_name('owner')}@example.com")
    form_login(client, owner.email)
    subject = _name()
    _link(client, subject)

    exported = client.get(
        "/api/v1/settings/account/export",
        headers=auth_header(login({"email": owner.email, "password": PASSWORD})["access_token"]),
    )

    assert exported.status_code == 200, exported.json
    [identity] = exported.json["identities"]
    assert identity["provider"] == "idp"
    assert identity["subject"] == subject
    assert identity["email"] == f"{subject}@example.com"
    assert identity["email_verified"] is True
