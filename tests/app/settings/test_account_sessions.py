"""Self-service settings: profile, password change and sessions (AC-4, PW-6, SE-3, SE-5, AU-1).

This part: the sessions, and who may call these routes.
"""

import jwt
import pytest

from tests.app.settings.account import (
    ME,
    NEW_PASSWORD,
    PASSWORD_ROUTE,
    PROFILE,
    REFRESH,
    UNKNOWN_ID,
    audit_events,
)
from tests.app.settings.conftest import SETTINGS, key_header
from tests.conftest import PASSWORD, auth_header

SESSIONS = f"{SETTINGS}/sessions"
DAY = 86400


def set_clock(client, seconds):
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200


def session_id(pair):
    """The `sid` claim of a login answer's access token."""
    return jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]


def listed_ids(client, pair):
    response = client.get(SESSIONS, headers=auth_header(pair["access_token"]))
    assert response.status_code == 200, response.json
    return [session["id"] for session in response.json["sessions"]]


# Sessions


def test_sessions_lists_only_mine_and_marks_the_current_one(client, make_user, login):
    """SE-5."""
    user = make_user()
    first, second = login(user), login(user)
    login(make_user(email="other@example.com"))

    response = client.get(SESSIONS, headers=auth_header(second["access_token"]))

    assert response.status_code == 200
    sessions = response.json["sessions"]
    assert {s["id"] for s in sessions} == {session_id(first), session_id(second)}
    assert [s["id"] for s in sessions if s["current"]] == [session_id(second)]
    for session in sessions:
        assert set(session) == {"id", "created_at", "last_seen_at", "ip", "user_agent", "current"}
        assert session["ip"] == "127.0.0.1"
        assert session["created_at"].endswith("Z")


def test_logged_out_and_revoked_sessions_are_not_listed(client, make_user, login):
    user = make_user()
    kept, logged_out, deleted = login(user), login(user), login(user)
    client.post("/api/v1/auth/logout", headers=auth_header(logged_out["access_token"]))
    client.delete(f"{SESSIONS}/{session_id(deleted)}", headers=auth_header(kept["access_token"]))

    assert listed_ids(client, kept) == [session_id(kept)]


def test_sessions_idle_past_fourteen_days_are_not_listed(client, make_user, login):
    """RT-4: an idle session is over even before its refresh token is presented."""
    user = make_user()
    idle, active = login(user), login(user)
    set_clock(client, 10 * DAY)
    assert client.post(REFRESH, json={"refresh_token": active["refresh_token"]}).status_code == 200

    set_clock(client, 14 * DAY + 60)
    current = login(user)

    assert listed_ids(client, current) == [session_id(current), session_id(active)]
    assert session_id(idle) not in listed_ids(client, current)


def test_sessions_past_thirty_days_are_not_listed(client, make_user, login):
    """RT-4: the absolute cap beats activity."""
    user = make_user()
    old = login(user)
    token = old["refresh_token"]
    for day in (10, 20, 29):
        set_clock(client, day * DAY)
        refreshed = client.post(REFRESH, json={"refresh_token": token})
        assert refreshed.status_code == 200
        token = refreshed.json["refresh_token"]

    set_clock(client, 30 * DAY + 60)
    current = login(user)

    assert listed_ids(client, current) == [session_id(current)]


def test_deleting_my_other_session_ends_it_at_once(app, client, make_user, login):
    """SE-5, AU-1."""
    user = make_user()
    this, other = login(user), login(user)

    response = client.delete(
        f"{SESSIONS}/{session_id(other)}", headers=auth_header(this["access_token"])
    )

    assert response.status_code == 204
    me = client.get(ME, headers=auth_header(other["access_token"]))
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    assert client.post(REFRESH, json={"refresh_token": other["refresh_token"]}).status_code == 401
    assert client.get(ME, headers=auth_header(this["access_token"])).status_code == 200
    [event] = audit_events(app, "session.revoked")
    assert event["actor"] == f"user:{user['id']}"
    assert event["data"] == {"session_id": session_id(other)}


def test_deleting_an_already_revoked_own_session_is_204_again(app, client, make_user, login):
    user = make_user()
    this, other = login(user), login(user)
    url, headers = f"{SESSIONS}/{session_id(other)}", auth_header(this["access_token"])

    assert client.delete(url, headers=headers).status_code == 204
    assert client.delete(url, headers=headers).status_code == 204
    assert len(audit_events(app, "session.revoked")) == 1


def test_deleting_another_users_session_is_404_and_changes_nothing(app, client, tenants):
    """SE-5, AC-2: in the same organization or in another one."""
    acme, globex = tenants["acme"], tenants["globex"]
    for victim in (acme["admin"], globex["member"]):
        theirs = {"access_token": victim.access_token}
        url = f"{SESSIONS}/{session_id(theirs)}"

        response = client.delete(url, headers=acme["member"].headers)

        assert response.status_code == 404
        assert response.json["error"]["code"] == "not_found"
        assert client.get(ME, headers=victim.headers).status_code == 200
        assert session_id(theirs) in listed_ids(client, theirs)
    assert audit_events(app, "session.revoked") == []


@pytest.mark.parametrize("bad_id", ["not-a-uuid", UNKNOWN_ID, "1%20OR%201=1", "0" * 300])
def test_malformed_or_unknown_session_id_is_404(client, make_user, login, bad_id):
    pair = login(make_user())

    response = client.delete(f"{SESSIONS}/{bad_id}", headers=auth_header(pair["access_token"]))

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 200


def test_deleting_the_current_session_logs_me_out(client, make_user, login):
    pair = login(make_user())

    response = client.delete(
        f"{SESSIONS}/{session_id(pair)}", headers=auth_header(pair["access_token"])
    )

    assert response.status_code == 204
    me = client.get(ME, headers=auth_header(pair["access_token"]))
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    assert client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401


# Who may call


SELF_SERVICE = [
    ("get", PROFILE, None),
    ("patch", PROFILE, {"full_name": "Key"}),
    ("post", PASSWORD_ROUTE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    ("get", SESSIONS, None),
    ("delete", f"{SESSIONS}/{UNKNOWN_ID}", None),
]


@pytest.mark.parametrize(("method", "url", "body"), SELF_SERVICE)
def test_api_key_on_self_service_routes_is_403(client, tenants, make_api_key, method, url, body):
    """A key acts for its organization, never as a user (AK-3)."""
    scopes = ["users:read", "users:manage", "roles:manage", "org:manage", "audit:read"]
    key = make_api_key(tenants["acme"], scopes)["key"]

    response = getattr(client, method)(url, json=body, headers=key_header(key))

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "url", "body"), SELF_SERVICE)
def test_self_service_routes_without_a_token_are_401(client, method, url, body):
    response = getattr(client, method)(url, json=body)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"
