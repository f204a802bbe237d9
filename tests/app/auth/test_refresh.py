"""Refresh rotation, the grace window and reuse detection: RT-1, RT-2, RT-3."""

import threading
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import sqlalchemy as sa

from authapp.models import AuditEvent, RefreshToken, Session
from authapp.platform.extensions import db
from tests.conftest import auth_header

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def set_clock(client, seconds):
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200


def test_refresh_rotates_within_the_same_session(client, make_user, login):
    """RT-1."""
    pair = login(make_user())

    response = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 200
    new = response.json
    assert set(new) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert claims(new["refresh_token"])["sid"] == claims(pair["refresh_token"])["sid"]
    assert claims(new["access_token"])["sid"] == claims(pair["access_token"])["sid"]
    assert claims(new["refresh_token"])["jti"] != claims(pair["refresh_token"])["jti"]
    assert client.get(ME, headers=auth_header(new["access_token"])).status_code == 200


def test_parent_within_the_window_is_an_idempotent_retry(app, client, make_user, login):
    """A lost response or a second tab: same current token back, nothing rotated."""
    pair = login(make_user())
    first = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).json

    retry = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert retry.status_code == 200
    assert claims(retry.json["refresh_token"])["jti"] == claims(first["refresh_token"])["jti"]
    assert retry.json["access_token"] != pair["access_token"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RefreshToken)) == 2
    assert client.post(REFRESH, json={"refresh_token": first["refresh_token"]}).status_code == 200


def _assert_session_revoked_by_reuse(app, client, newest):
    assert client.get(ME, headers=auth_header(newest["access_token"])).status_code == 401
    again = client.post(REFRESH, json={"refresh_token": newest["refresh_token"]})
    assert again.status_code == 401
    with app.app_context():
        session = db.session.scalars(sa.select(Session)).one()
        assert session.revoked_reason == "token_reused"
        events = db.session.scalars(
            sa.select(AuditEvent.event).where(AuditEvent.event == "session.reuse_detected")
        ).all()
        assert events == ["session.reuse_detected"]


def test_parent_after_the_window_revokes_the_session(app, client, make_user, login):
    """RT-2: replay after the grace window."""
    pair = login(make_user())
    newest = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).json
    set_clock(client, 11)

    replay = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json["error"]["code"] == "token_reused"
    assert replay.headers["WWW-Authenticate"] == "Bearer"
    _assert_session_revoked_by_reuse(app, client, newest)


def test_an_older_ancestor_revokes_the_session_even_inside_the_window(
    app, client, make_user, login
):
    """RT-2: only the immediate parent may be retried."""
    pair = login(make_user())
    child = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).json
    grandchild = client.post(REFRESH, json={"refresh_token": child["refresh_token"]}).json

    replay = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json["error"]["code"] == "token_reused"
    _assert_session_revoked_by_reuse(app, client, grandchild)


def test_reuse_revokes_only_that_session(client, make_user, login):
    user = make_user()
    victim, other = login(user), login(user)
    client.post(REFRESH, json={"refresh_token": victim["refresh_token"]})
    set_clock(client, 11)

    client.post(REFRESH, json={"refresh_token": victim["refresh_token"]})

    assert client.get(ME, headers=auth_header(other["access_token"])).status_code == 200


def _race(app, token, threads):
    barrier = threading.Barrier(threads)

    def one(_):
        client = app.test_client()
        barrier.wait()
        response = client.post(REFRESH, json={"refresh_token": token})
        return response.status_code, response.json

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(threads)))


def _children(app):
    with app.app_context():
        return db.session.scalars(
            sa.select(RefreshToken).where(RefreshToken.used_at.is_(None))
        ).all()


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_refreshes_rotate_once(app, client, make_user, login, attempt):
    """RT-3, window 10: 12 threads, one token, one rotation, everyone gets the same child."""
    pair = login(make_user())

    results = _race(app, pair["refresh_token"], 12)

    assert all(status == 200 for status, _ in results), results
    jtis = {claims(body["refresh_token"])["jti"] for _, body in results}
    assert len(jtis) == 1
    assert [row.jti for row in _children(app)] == list(jtis)


@pytest.mark.config(REFRESH_REUSE_GRACE_SECONDS=0)
@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_refreshes_without_window_one_wins(app, make_user, login, attempt):
    """RT-3, window 0: exactly one 200, the rest 401 token_reused, no 5xx."""
    pair = login(make_user())

    results = _race(app, pair["refresh_token"], 12)

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * 11, results
    assert {body["error"]["code"] for status, body in results if status == 401} == {"token_reused"}


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b.c"],
)
def test_malformed_refresh_token_is_401_invalid_token(client, token):
    """JW-8."""
    response = client.post(REFRESH, json={"refresh_token": token})

    assert response.status_code in (401, 422)
    if response.status_code == 401:
        assert response.json["error"]["code"] == "invalid_token"


def test_access_token_is_not_a_refresh_token(client, make_user, login):
    """JW-4."""
    pair = login(make_user())

    response = client.post(REFRESH, json={"refresh_token": pair["access_token"]})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_refresh_token_of_a_disabled_user_is_refused(app, client, make_user, login):
    """RT-4."""
    pair = login(make_user(username="gone"))
    app.test_cli_runner().invoke(args=["disable-user", "gone"])

    response = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_revoked"


def test_refresh_without_a_body_token_or_a_cookie_is_401_missing_token(client):
    response = client.post(REFRESH, json={})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
