"""Logout, logout-all and what a session records: SE-1, SE-2, SE-5."""

import sqlalchemy as sa

from authapp.models import AuditEvent, Session
from authapp.platform.extensions import db
from tests.conftest import auth_header

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"


def test_logout_ends_this_session_and_only_this_one(client, make_user, login):
    """SE-1."""
    user = make_user()
    this, other = login(user), login(user)

    response = client.post("/api/v1/auth/logout", headers=auth_header(this["access_token"]))

    assert response.status_code == 204
    assert response.get_data() == b""
    me = client.get(ME, headers=auth_header(this["access_token"]))
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    refreshed = client.post(REFRESH, json={"refresh_token": this["refresh_token"]})
    assert refreshed.status_code == 401
    assert refreshed.json["error"]["code"] == "token_revoked"
    assert client.get(ME, headers=auth_header(other["access_token"])).status_code == 200


def test_logout_with_its_refresh_token_in_the_body(client, make_user, login):
    pair = login(make_user())

    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=auth_header(pair["access_token"]),
    )

    assert response.status_code == 204
    assert client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_logout_refuses_someone_elses_refresh_token(client, make_user, login):
    mine = login(make_user(email="me@example.com"))
    theirs = login(make_user(email="them@example.com"))

    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": theirs["refresh_token"]},
        headers=auth_header(mine["access_token"]),
    )

    assert response.status_code == 401
    assert client.get(ME, headers=auth_header(theirs["access_token"])).status_code == 200


def test_logout_without_a_token_is_401(client):
    response = client.post("/api/v1/auth/logout")

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"


def test_logout_all_ends_every_session(app, client, make_user, login):
    """SE-2."""
    user = make_user()
    sessions = [login(user) for _ in range(3)]

    response = client.post(
        "/api/v1/auth/logout-all", headers=auth_header(sessions[0]["access_token"])
    )

    assert response.status_code == 204
    for pair in sessions:
        assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 401
        assert (
            client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401
        )
    with app.app_context():
        reasons = db.session.scalars(sa.select(Session.revoked_reason)).all()
        events = db.session.scalars(sa.select(AuditEvent.event)).all()
    assert reasons == ["logout_all"] * 3
    assert "logout_all" in events


def test_logout_all_leaves_other_users_alone(client, make_user, login):
    mine = login(make_user(email="me@example.com"))
    theirs = login(make_user(email="them@example.com"))

    client.post("/api/v1/auth/logout-all", headers=auth_header(mine["access_token"]))

    assert client.get(ME, headers=auth_header(theirs["access_token"])).status_code == 200


def log_in_with_headers(client, user, headers):
    response = client.post(
        "/api/v1/auth/login",
        json={"login": user["email"], "password": user["password"]},
        headers=headers,
    )
    assert response.status_code == 200


def test_a_session_records_where_it_came_from(app, client, make_user):
    """SE-5, and the fields the settings pages list."""
    log_in_with_headers(client, make_user(), {"User-Agent": "pytest-agent/1.0"})

    with app.app_context():
        session = db.session.scalars(sa.select(Session)).one()
    assert session.ip == "127.0.0.1"
    assert session.user_agent == "pytest-agent/1.0"
    assert session.created_at == session.last_seen_at
    assert session.revoked_at is None
    assert session.revoked_reason is None
    assert (session.expires_at - session.created_at).days == 30


def test_refresh_moves_last_seen(app, client, make_user, login):
    pair = login(make_user())
    client.post("/_testing/clock", json={"offset_seconds": 3600})

    client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    with app.app_context():
        session = db.session.scalars(sa.select(Session)).one()
    assert (session.last_seen_at - session.created_at).total_seconds() >= 3600


def test_spoofed_forwarded_for_is_ignored_without_trusted_proxies(app, client, make_user):
    """RL-3: the socket peer is the client unless the peer is a configured proxy."""
    log_in_with_headers(client, make_user(), {"X-Forwarded-For": "203.0.113.9"})

    with app.app_context():
        assert db.session.scalars(sa.select(Session.ip)).one() == "127.0.0.1"
