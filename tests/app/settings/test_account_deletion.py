"""Deleting one's own account (DELETE /api/v1/settings/account): the password again; the rows
that hang off the account go, its keys stay revoked, its audit rows stay anonymised; an owner is
refused; a user's login only; hostile bodies are 422."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from authapp.models import (
    ApiKey,
    AuditEvent,
    LoginThrottle,
    Membership,
    OneTimeToken,
    Organization,
    OutboxMessage,
    RecoveryCode,
    RefreshToken,
    Session,
    User,
    membership_roles,
)
from authapp.platform import clock
from authapp.platform.extensions import db
from tests.app.settings.account import ME, REFRESH, audit_events, log_in_with
from tests.app.settings.conftest import SETTINGS, key_header
from tests.conftest import PASSWORD

ACCOUNT = f"{SETTINGS}/account"


def delete(client, account, password=PASSWORD, **headers):
    return client.delete(ACCOUNT, json={"password": password}, headers=account.headers | headers)


def count(app, query):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))


def rows_of(app, user_id):
    """How many rows of each table name the account."""
    sessions = sa.select(Session.id).where(Session.user_id == user_id)
    mails = OutboxMessage.payload["user_id"].as_string() == user_id
    queries = {
        "users": sa.select(User.id).where(User.id == user_id),
        "sessions": sessions,
        "refresh_tokens": sa.select(RefreshToken.jti).where(RefreshToken.session_id.in_(sessions)),
        "one_time_tokens": sa.select(OneTimeToken.id).where(OneTimeToken.user_id == user_id),
        "recovery_codes": sa.select(RecoveryCode.id).where(RecoveryCode.user_id == user_id),
        "memberships": sa.select(Membership.id).where(Membership.user_id == user_id),
        "membership_roles": sa.select(membership_roles.c.role_id)
        .join(Membership, Membership.id == membership_roles.c.membership_id)
        .where(Membership.user_id == user_id),
        "mails": sa.select(OutboxMessage.id).where(OutboxMessage.kind == "email", mails),
        "audit_by_user_id": sa.select(AuditEvent.id).where(AuditEvent.user_id == user_id),
        "audit_by_actor": sa.select(AuditEvent.id).where(AuditEvent.actor == f"user:{user_id}"),
        "keys": sa.select(ApiKey.id).where(
            sa.or_(ApiKey.created_by == user_id, ApiKey.acts_for == user_id)
        ),
    }
    return {name: count(app, query) for name, query in queries.items()}


@pytest.fixture
def admin(app, client, tenants):
    """Acme's admin with a key of their own, recovery codes, a pending link, a failed login and
    a webhook receiver for the organization."""
    admin = tenants["acme"]["admin"]
    made = client.post(
        f"{SETTINGS}/api-keys",
        json={"name": "admin's key", "scopes": ["users:read"]},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.json
    admin.key = made.json
    assert log_in_with(client, admin.email, "a wrong password, typed once").status_code == 401
    with app.app_context():
        db.session.add(RecoveryCode(user_id=admin.id, code_hash="a" * 64))
        db.session.add(
            OneTimeToken(
                purpose="password_reset",
                user_id=admin.id,
                token_hash="b" * 64,
                expires_at=clock.now() + timedelta(hours=1),
            )
        )
        db.session.add(
            OutboxMessage(kind="email", payload={"to": admin.email, "user_id": admin.id})
        )
        db.session.get(Organization, tenants["acme"].id).webhook_url = "https://hooks.example/a"
        db.session.commit()
    return admin


def test_a_wrong_password_is_422_and_changes_nothing(app, client, admin):
    before = rows_of(app, admin.id)

    response = delete(client, admin, password="not the password at all, sorry")

    assert response.status_code == 422
    assert list(response.json["error"]["fields"]) == ["password"]
    after = rows_of(app, admin.id)
    assert after.pop("audit_by_user_id") == before.pop("audit_by_user_id") + 1  # the failure
    assert after.pop("audit_by_actor") == before.pop("audit_by_actor") + 1
    assert after == before
    assert client.get(ME, headers=admin.headers).status_code == 200
    [event] = audit_events(app, "account.delete_failed")
    assert event["user_id"] == admin.id


def test_deletion_removes_the_account_and_what_hangs_off_it(app, client, admin):
    response = delete(client, admin)

    assert response.status_code == 204
    left = rows_of(app, admin.id)
    assert left == dict.fromkeys(left, 0)
    with app.app_context():
        assert db.session.scalars(sa.select(LoginThrottle)).all() == []
        key = db.session.get(ApiKey, admin.key["id"])
        assert key.revoked_at is not None  # the organization's row stays, revoked
        assert key.created_by is None
        assert key.acts_for is None


def test_the_keys_stop_working(client, admin):
    assert (
        client.get(f"{SETTINGS}/members", headers=key_header(admin.key["key"])).status_code == 200
    )

    delete(client, admin)

    assert (
        client.get(f"{SETTINGS}/members", headers=key_header(admin.key["key"])).status_code == 401
    )


def test_the_audit_trail_stays_anonymised(app, client, admin):
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        db.session.add(
            AuditEvent(
                event="test.mentions",
                organization_id=admin_org(app, admin),
                user_id=admin.id,
                actor=f"user:{admin.id}",
                data={"email": admin.email, "nested": {"to": admin.email, "kept": 1}},
            )
        )
        db.session.commit()

    delete(client, admin)

    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent)).all()
        assert len(rows) >= before + 2  # the rows stay, with user.deleted added
        text = json.dumps([[r.user_id, r.actor, r.data] for r in rows])
        assert admin.email not in text
        assert f"user:{admin.id}" not in text
        mention = next(r for r in rows if r.event == "test.mentions")
        assert (mention.user_id, mention.actor) == (None, "user:deleted")
        assert mention.data == {"nested": {"kept": 1}}
    [event] = audit_events(app, "user.deleted")
    assert event["user_id"] is None
    assert event["data"]["user_id"] == admin.id


def admin_org(app, admin):
    with app.app_context():
        return db.session.get(User, admin.id).organization_id


def test_the_organization_is_told_by_webhook(app, client, admin):
    delete(client, admin)

    with app.app_context():
        hooks = db.session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.kind == "webhook")
        ).all()
        [deleted] = [h.payload for h in hooks if h.payload["event"] == "user.deleted"]
        assert deleted["data"] == {"user_id": admin.id}


def test_the_old_tokens_are_refused_and_the_cookies_cleared(client, admin):
    response = delete(client, admin)

    assert client.get(ME, headers=admin.headers).status_code == 401
    refreshed = client.post(REFRESH, json={"refresh_token": admin.refresh_token})
    assert refreshed.status_code == 401
    cleared = " ".join(response.headers.getlist("Set-Cookie"))
    assert (
        "access_token=;" in cleared
        or "Max-Age=0" in cleared
        or "Expires=Thu, 01 Jan 1970" in cleared
    )


def test_the_address_can_sign_up_again(client, admin):
    delete(client, admin)

    again = client.post("/api/v1/auth/signup", json={"email": admin.email, "password": PASSWORD})

    assert again.status_code == 201, again.json
    assert log_in_with(client, admin.email, PASSWORD).status_code in (200, 403)


def test_an_owner_is_refused(app, client, tenants):
    owner = tenants["acme"]["owner"]

    response = delete(client, owner)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "owner_must_transfer"
    assert rows_of(app, owner.id)["users"] == 1


def test_an_api_key_cannot_delete(app, client, admin):
    response = client.delete(
        ACCOUNT, json={"password": PASSWORD}, headers=key_header(admin.key["key"])
    )

    assert response.status_code == 403
    assert rows_of(app, admin.id)["users"] == 1


def test_no_login_is_401(client):
    assert client.delete(ACCOUNT, json={"password": PASSWORD}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"password": None},
        {"password": 12345},
        {"password": ["a list"]},
        {"password": "\ud800 lone surrogate"},
        {"password": "x" * 5_000},  # under the body cap, over the password's
        [],
        "a string",
    ],
)
def test_hostile_bodies_are_422(app, client, tenants, body):
    member = tenants["acme"]["member"]

    response = client.delete(ACCOUNT, json=body, headers=member.headers)

    assert response.status_code == 422, response.json
    assert rows_of(app, member.id)["users"] == 1
