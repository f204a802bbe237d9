"""Self-service settings: profile, password change and sessions (AC-4, PW-6, SE-3, SE-5, AU-1).

This part: changing the password.
"""

import json

import pytest

from tests.app.settings.account import (
    ME,
    NEW_PASSWORD,
    PASSWORD_ROUTE,
    REFRESH,
    audit_events,
    log_in_with,
)
from tests.conftest import PASSWORD, auth_header


def change_password(client, pair, current=PASSWORD, new=NEW_PASSWORD):
    body = {"current_password": current, "new_password": new}
    return client.post(PASSWORD_ROUTE, json=body, headers=auth_header(pair["access_token"]))


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
