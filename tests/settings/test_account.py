"""Self-service settings: profile, password change and sessions (AC-4, PW-6, SE-3, SE-5, AU-1)."""

import json

import jwt
import pytest
import sqlalchemy as sa

from authapp.models import AuditEvent
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header
from tests.settings.conftest import SETTINGS, key_header

PROFILE = f"{SETTINGS}/profile"
PASSWORD_ROUTE = f"{SETTINGS}/password"
SESSIONS = f"{SETTINGS}/sessions"
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "an entirely different passphrase"
DAY = 86400
UNKNOWN_ID = "5f0c2a4e-9b1d-4c3e-8f7a-2d6b1e0c9a84"  # fixed: xdist needs stable test ids


def set_clock(client, seconds):
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200


def session_id(pair):
    """The `sid` claim of a login answer's access token."""
    return jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]


def audit_events(app, event):
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == event)).all()
        return [{"actor": r.actor, "user_id": r.user_id, "data": r.data} for r in rows]


def log_in_with(client, login, password):
    return client.post("/api/v1/auth/login", json={"login": login, "password": password})


def change_password(client, pair, current=PASSWORD, new=NEW_PASSWORD):
    body = {"current_password": current, "new_password": new}
    return client.post(PASSWORD_ROUTE, json=body, headers=auth_header(pair["access_token"]))


def listed_ids(client, pair):
    response = client.get(SESSIONS, headers=auth_header(pair["access_token"]))
    assert response.status_code == 200, response.json
    return [session["id"] for session in response.json["sessions"]]


# Profile


def test_profile_shows_the_caller_without_secrets(client, make_user, login):
    user = make_user(email="ada@example.com", username="ada_l", full_name="Ada Lovelace")
    pair = login(user)

    response = client.get(PROFILE, headers=auth_header(pair["access_token"]))

    assert response.status_code == 200
    shown = response.json["user"]
    assert (shown["id"], shown["email"], shown["username"]) == (user["id"], user["email"], "ada_l")
    assert shown["full_name"] == "Ada Lovelace"
    assert "hash" not in response.get_data(as_text=True)


def test_profile_patch_changes_name_and_username_and_is_audited(app, client, make_user, login):
    """AU-1: profile.updated names the changed fields, acted by the user."""
    user = make_user()
    headers = auth_header(login(user)["access_token"])

    response = client.patch(
        PROFILE, json={"full_name": "  Ada King  ", "username": "countess"}, headers=headers
    )

    assert response.status_code == 200, response.json
    assert response.json["user"]["full_name"] == "Ada King"
    assert response.json["user"]["username"] == "countess"
    assert client.get(PROFILE, headers=headers).json["user"]["username"] == "countess"
    [event] = audit_events(app, "profile.updated")
    assert event["actor"] == f"user:{user['id']}"
    assert event["user_id"] == user["id"]
    assert event["data"] == {"fields": ["full_name", "username"]}


def test_username_taken_in_another_case_is_409(client, make_user, login):
    make_user(email="grace@example.com", username="Grace")
    headers = auth_header(login(make_user(username="ada_l"))["access_token"])

    response = client.patch(PROFILE, json={"username": "gRACE"}, headers=headers)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "username_taken"
    assert client.get(PROFILE, headers=headers).json["user"]["username"] == "ada_l"


def test_null_clears_the_username(client, make_user, login):
    user = make_user(username="ada_l")
    headers = auth_header(login(user)["access_token"])

    response = client.patch(PROFILE, json={"username": None}, headers=headers)

    assert response.status_code == 200
    assert response.json["user"]["username"] is None
    assert log_in_with(client, "ada_l", user["password"]).status_code == 401
    make_user(email="other@example.com", username="ADA_L")  # raises while the name is taken


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"is_admin": True},
        {"full_name": "Mallory", "email": "mallory@example.com"},
        {"full_name": "Mallory", "organization_id": UNKNOWN_ID},
        {"full_name": "Mallory", "roles": ["owner"]},
    ],
)
def test_empty_or_unknown_profile_fields_are_422_and_change_nothing(client, make_user, login, body):
    """AC-4: mass assignment is refused as a whole."""
    headers = auth_header(login(make_user(full_name="Ada"))["access_token"])
    before = client.get(PROFILE, headers=headers).json["user"]

    response = client.patch(PROFILE, json=body, headers=headers)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    for name in set(body) - {"full_name"}:
        assert name in response.json["error"]["fields"]
    assert client.get(PROFILE, headers=headers).json["user"] == before


@pytest.mark.parametrize(
    "username", ["ab", "x" * 33, "has space", "slash/name", "émile", "", 42, ["ada"]]
)
def test_invalid_username_is_422(client, make_user, login, username):
    headers = auth_header(login(make_user(username="ada_l"))["access_token"])

    response = client.patch(PROFILE, json={"username": username}, headers=headers)

    assert response.status_code == 422
    assert "username" in response.json["error"]["fields"]
    assert client.get(PROFILE, headers=headers).json["user"]["username"] == "ada_l"


@pytest.mark.parametrize(
    "body",
    [
        {"full_name": "Ada\x00Lovelace"},
        {"full_name": "Ada\nLovelace"},
        {"full_name": "Ada\x1b[31mLovelace"},
        {"full_name": "Ada\x7f"},
        {"username": "ada\x00l"},
    ],
)
def test_control_characters_are_422(client, make_user, login, body):
    """IN-2."""
    headers = auth_header(login(make_user(full_name="Ada"))["access_token"])

    response = client.patch(PROFILE, json=body, headers=headers)

    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == set(body)
    assert client.get(PROFILE, headers=headers).json["user"]["full_name"] == "Ada"


# Password


def test_wrong_current_password_is_422_and_keeps_the_password(app, client, make_user, login):
    """PW-6, AU-1."""
    user = make_user()
    pair = login(user)

    response = change_password(client, pair, current="not the password at all, sorry")

    assert response.status_code == 422
    assert list(response.json["error"]["fields"]) == ["current_password"]
    assert log_in_with(client, user["email"], NEW_PASSWORD).status_code == 401
    assert log_in_with(client, user["email"], PASSWORD).status_code == 200
    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 200
    [event] = audit_events(app, "password.change_failed")
    assert event["actor"] == f"user:{user['id']}"
    assert "not the password" not in json.dumps(event["data"])


def test_current_password_is_required(client, make_user, login):
    """PW-6."""
    user = make_user()
    headers = auth_header(login(user)["access_token"])

    response = client.post(PASSWORD_ROUTE, json={"new_password": NEW_PASSWORD}, headers=headers)

    assert response.status_code == 422
    assert "current_password" in response.json["error"]["fields"]
    assert log_in_with(client, user["email"], NEW_PASSWORD).status_code == 401


@pytest.mark.parametrize(
    "new_password",
    [
        "too short",
        "1q2w3e4r5t6y7u8i9o0p",  # in the shipped list of common passwords
        "hopper is my favourite admiral",  # the user's own name
        "my.email.is.grace.hopper@example.com",
    ],
)
def test_weak_new_password_is_422_and_changes_nothing(client, make_user, login, new_password):
    """PW-3 on change: the answer says why, on `new_password`."""
    user = make_user(email="grace.hopper@example.com", full_name="Grace Hopper")
    pair = login(user)

    response = change_password(client, pair, new=new_password)

    assert response.status_code == 422
    assert list(response.json["error"]["fields"]) == ["new_password"]
    assert response.json["error"]["fields"]["new_password"][0]
    assert log_in_with(client, user["email"], new_password).status_code == 401
    assert log_in_with(client, user["email"], PASSWORD).status_code == 200


def test_password_change_keeps_this_session_and_ends_the_others(client, make_user, login):
    """SE-3: the current session's access and refresh tokens keep working; the others' fail."""
    user = make_user()
    this, others = login(user), [login(user), login(user)]

    response = change_password(client, this)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert client.get(ME, headers=auth_header(this["access_token"])).status_code == 200
    assert client.post(REFRESH, json={"refresh_token": this["refresh_token"]}).status_code == 200
    for pair in others:
        me = client.get(ME, headers=auth_header(pair["access_token"]))
        assert me.status_code == 401
        assert me.json["error"]["code"] == "token_revoked"
        refreshed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 401


def test_after_a_password_change_only_the_new_password_logs_in(client, make_user, login):
    """SE-3."""
    user = make_user()

    assert change_password(client, login(user)).status_code == 204

    old = log_in_with(client, user["email"], PASSWORD)
    assert old.status_code == 401
    assert old.json["error"]["code"] == "invalid_credentials"
    assert log_in_with(client, user["email"], NEW_PASSWORD).status_code == 200


def test_password_change_is_audited_without_a_password(app, client, make_user, login):
    """AU-1, AU-2."""
    user = make_user()
    this, _other = login(user), login(user)

    assert change_password(client, this).status_code == 204

    [event] = audit_events(app, "password.changed")
    assert event["actor"] == f"user:{user['id']}"
    assert event["user_id"] == user["id"]
    assert event["data"]["sessions_revoked"] == 1
    assert PASSWORD not in json.dumps(event["data"])
    assert NEW_PASSWORD not in json.dumps(event["data"])


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
