"""Self-service settings: profile, password change and sessions (AC-4, PW-6, SE-3, SE-5, AU-1).

This part: the profile.
"""

import pytest

from tests.app.settings.account import PROFILE, UNKNOWN_ID, audit_events, log_in_with
from tests.conftest import auth_header

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
