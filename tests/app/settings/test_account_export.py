"""A person's data export (GET /api/v1/settings/account/export): their data, never a secret,
never another person's; a user's login only; a file that is never cached; audited."""

from __future__ import annotations

import json

import sqlalchemy as sa

from authapp.models import ApiKey, AuditEvent, RecoveryCode, RefreshToken, Session, User
from authapp.platform import clock
from authapp.platform.extensions import db
from tests.app.settings.account import audit_events
from tests.app.settings.conftest import SETTINGS, key_header
from tests.conftest import auth_header

EXPORT = f"{SETTINGS}/account/export"


def export(client, account):
    response = client.get(EXPORT, headers=account.headers)
    assert response.status_code == 200, response.json
    return response


def secrets_of(app, user_id):
    """Every stored secret of the account: none may appear in its export."""
    with app.app_context():
        user = db.session.get(User, user_id)
        found = [user.password_hash, *([user.mfa_secret] if user.mfa_secret else [])]
        found += db.session.scalars(sa.select(ApiKey.key_hash)).all()
        found += db.session.scalars(
            sa.select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user_id)
        ).all()
        sessions = sa.select(Session.id).where(Session.user_id == user_id)
        found += [
            str(jti)
            for jti in db.session.scalars(
                sa.select(RefreshToken.jti).where(RefreshToken.session_id.in_(sessions))
            )
        ]
        return found


def test_the_export_holds_the_persons_data(client, tenants, make_api_key):
    owner = tenants["acme"]["owner"]
    key = make_api_key(tenants["acme"], ["users:read"])

    response = export(client, owner)
    document = response.json

    assert set(document) >= {"exported_at", "user", "memberships", "sessions", "api_keys"}
    assert document["user"]["id"] == owner.id
    assert document["user"]["email"] == owner.email
    assert document["user"]["email_verified"] is True
    assert document["user"]["mfa_enabled"] is False
    [membership] = document["memberships"]
    assert membership["organization"] == {"id": tenants["acme"].id, "name": "Acme"}
    assert membership["roles"] == ["owner"]
    assert len(document["sessions"]) == 1
    assert set(document["sessions"][0]) >= {"id", "created_at", "expires_at", "revoked_at", "ip"}
    [exported_key] = document["api_keys"]
    assert exported_key["id"] == key["id"]
    assert exported_key["prefix"] == key["prefix"]
    events = [event["event"] for event in document["audit_events"]]
    assert "user.signed_up" in events
    assert document["audit_events_truncated"] is False


def test_the_export_holds_no_secret(app, client, tenants, make_api_key):
    owner = tenants["acme"]["owner"]
    key = make_api_key(tenants["acme"], ["users:read"])

    body = export(client, owner).get_data(as_text=True)

    for secret in [key["key"], owner.access_token, owner.refresh_token, *secrets_of(app, owner.id)]:
        assert secret not in body
    for name in ("password_hash", "mfa_secret", "key_hash", "code_hash", "token_hash"):
        assert name not in body


def test_the_export_holds_nobody_elses_data(client, tenants, make_api_key):
    make_api_key(tenants["globex"], ["users:read"])
    member = tenants["acme"]["member"]
    others = [tenants["acme"]["owner"], tenants["globex"]["owner"], tenants["globex"]["member"]]

    document = export(client, member).json

    assert document["api_keys"] == []  # the owners' keys, not the member's
    assert {event.get("organization_id") for event in document["audit_events"]} == {
        tenants["acme"].id
    }
    body = json.dumps(document)
    for other in others:
        assert other.id not in body
        assert other.email not in body


def test_the_export_is_a_file_never_cached(client, tenants):
    response = export(client, tenants["acme"]["member"])

    day = clock.now().strftime("%Y-%m-%d")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="authapp-export-{day}.json"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"


def test_the_export_is_audited(app, client, tenants):
    member = tenants["acme"]["member"]

    export(client, member)

    [event] = audit_events(app, "account.exported")
    assert event["user_id"] == member.id
    assert event["actor"] == f"user:{member.id}"


def test_an_api_key_cannot_export(app, client, tenants, make_api_key):
    key = make_api_key(tenants["acme"], ["users:read"])

    response = client.get(EXPORT, headers=key_header(key["key"]))

    assert response.status_code == 403
    assert audit_events(app, "account.exported") == []


def test_no_login_is_401(client):
    assert client.get(EXPORT).status_code == 401
    assert client.get(EXPORT, headers=auth_header("not-a-token")).status_code == 401


def test_the_audit_events_are_the_newest_and_capped(app, client, tenants, monkeypatch):
    member = tenants["acme"]["member"]
    monkeypatch.setattr("authapp.settings.services.privacy.EXPORTED_AUDIT_EVENTS", 3)
    with app.app_context():
        for number in range(5):
            db.session.add(
                AuditEvent(
                    event=f"test.event_{number}",
                    organization_id=tenants["acme"].id,
                    user_id=member.id,
                    actor="system",
                    data={},
                )
            )
            db.session.commit()

    document = export(client, member).json

    assert len(document["audit_events"]) == 3
    assert document["audit_events_truncated"] is True
    times = [event["created_at"] for event in document["audit_events"]]
    assert times == sorted(times, reverse=True)
