"""The audit trail: each security event is recorded with who, where and what (AU-1), never a
secret (AU-2), and read newest first, page by page, by holders of audit:read only (AC-1, AC-2).

This part: each action, its event (AU-1).
"""

from tests.app.settings.audit_log import (
    LOGIN,
    NEW_PASSWORD,
    REFRESH,
    TOKEN_NAMES,
    WRONG_PASSWORD,
    agent,
    assert_secret_free,
    log_in,
    rename,
    the_event,
)
from tests.app.settings.conftest import SETTINGS
from tests.conftest import PASSWORD, auth_header

# AU-1: each action, its event


def test_login_success_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("login-success")
    member = acme["member"]

    pair = log_in(client, member.email, headers)

    event = the_event(client, acme["owner"], headers, "login.succeeded")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert event["data"] == {"session_id": event["data"]["session_id"], "method": "password"}
    assert_secret_free(client, acme["owner"], PASSWORD, pair["access_token"], pair["refresh_token"])


def test_login_failure_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("login-failure")
    member = acme["member"]

    response = client.post(
        LOGIN, json={"login": member.email, "password": WRONG_PASSWORD}, headers=headers
    )

    assert response.status_code == 401
    event = the_event(client, acme["owner"], headers, "login.failed")
    assert event["actor"] == "system"
    assert event["user_id"] == member.id
    assert event["data"] == {"reason": "bad_password", "method": "password"}
    assert_secret_free(client, acme["owner"], WRONG_PASSWORD)


def test_logout_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("logout")
    member = acme["member"]
    pair = log_in(client, member.email)

    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=auth_header(pair["access_token"]) | headers,
    )

    assert response.status_code == 204
    event = the_event(client, acme["owner"], headers, "logout")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert "session_id" in event["data"]
    assert_secret_free(client, acme["owner"], pair["access_token"], pair["refresh_token"])


def test_logout_all_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("logout-all")
    member = acme["member"]
    pair = log_in(client, member.email)

    response = client.post(
        "/api/v1/auth/logout-all", headers=auth_header(pair["access_token"]) | headers
    )

    assert response.status_code == 204
    event = the_event(client, acme["owner"], headers, "logout_all")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert event["data"] == {"sessions_revoked": 2}  # the fixture's login and this one


def test_password_change_is_recorded(client, tenants, make_user):
    acme, headers = tenants["acme"], agent("password-change")
    user = make_user(email="pat@acme.example", organization=acme.id)
    this, other = log_in(client, user["email"]), log_in(client, user["email"])

    response = client.post(
        f"{SETTINGS}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth_header(this["access_token"]) | headers,
    )

    assert response.status_code == 204
    event = the_event(client, acme["owner"], headers, "password.changed")
    assert event["actor"] == f"user:{user['id']}"
    assert event["user_id"] == user["id"]
    assert event["data"] == {"sessions_revoked": 1}
    tokens = [pair[name] for pair in (this, other) for name in TOKEN_NAMES]
    assert_secret_free(client, acme["owner"], PASSWORD, NEW_PASSWORD, *tokens)


def test_a_failed_password_change_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("password-change-failed")
    member = acme["member"]

    response = client.post(
        f"{SETTINGS}/password",
        json={"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=member.headers | headers,
    )

    assert response.status_code == 422
    event = the_event(client, acme["owner"], headers, "password.change_failed")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert_secret_free(client, acme["owner"], WRONG_PASSWORD, NEW_PASSWORD)


def test_session_revocation_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("session-revoked")
    member = acme["member"]
    other = log_in(client, member.email)
    sessions = client.get(f"{SETTINGS}/sessions", headers=member.headers).json["sessions"]
    other_id = next(session["id"] for session in sessions if not session["current"])

    response = client.delete(f"{SETTINGS}/sessions/{other_id}", headers=member.headers | headers)

    assert response.status_code == 204
    event = the_event(client, acme["owner"], headers, "session.revoked")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert event["data"] == {"session_id": other_id}
    assert_secret_free(client, acme["owner"], other["access_token"], other["refresh_token"])


def test_refresh_token_reuse_is_recorded(client, tenants):
    """RT-2: replaying an older ancestor revokes the session and leaves a trace."""
    acme, headers = tenants["acme"], agent("reuse")
    member = acme["member"]
    first = log_in(client, member.email)
    second = client.post(REFRESH, json={"refresh_token": first["refresh_token"]}).json
    third = client.post(REFRESH, json={"refresh_token": second["refresh_token"]}).json

    replay = client.post(REFRESH, json={"refresh_token": first["refresh_token"]}, headers=headers)

    assert replay.status_code == 401
    assert replay.json["error"]["code"] == "token_reused"
    event = the_event(client, acme["owner"], headers, "session.reuse_detected")
    assert event["actor"] == "system"
    assert event["user_id"] == member.id
    assert "session_id" in event["data"]
    tokens = [pair[name] for pair in (first, second, third) for name in TOKEN_NAMES]
    assert_secret_free(client, acme["owner"], *tokens)


def test_a_member_change_is_recorded(client, tenants):
    """AU-1, AC-3: who changed whom, from what to what."""
    acme, headers = tenants["acme"], agent("member-updated")
    owner, member = acme["owner"], acme["member"]

    response = client.patch(
        f"{SETTINGS}/members/{member.id}",
        json={"roles": ["auditor"], "is_active": False},
        headers=owner.headers | headers,
    )

    assert response.status_code == 200, response.json
    event = the_event(client, owner, headers, "member.updated")
    assert event["actor"] == f"user:{owner.id}"
    assert event["user_id"] == member.id
    assert event["data"] == {
        "roles": {"from": ["member"], "to": ["auditor"]},
        "is_active": False,
        "sessions_revoked": 1,
    }


def test_role_creation_update_and_deletion_are_recorded(client, tenants):
    owner = tenants["acme"]["owner"]
    created_by, updated_by, deleted_by = agent("role-c"), agent("role-u"), agent("role-d")

    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "support", "permissions": ["users:read"]},
        headers=owner.headers | created_by,
    ).json
    updated = client.patch(
        f"{SETTINGS}/roles/{role['id']}",
        json={"name": "helpdesk", "permissions": ["users:read", "audit:read"]},
        headers=owner.headers | updated_by,
    )
    deleted = client.delete(f"{SETTINGS}/roles/{role['id']}", headers=owner.headers | deleted_by)

    assert (updated.status_code, deleted.status_code) == (200, 204)
    created_event = the_event(client, owner, created_by, "role.created")
    updated_event = the_event(client, owner, updated_by, "role.updated")
    deleted_event = the_event(client, owner, deleted_by, "role.deleted")
    for event in (created_event, updated_event, deleted_event):
        assert event["actor"] == f"user:{owner.id}"
        assert event["data"]["role_id"] == role["id"]
    assert created_event["data"]["permissions"] == ["users:read"]
    assert updated_event["data"]["before"] == {"name": "support", "permissions": ["users:read"]}
    assert updated_event["data"]["after"]["name"] == "helpdesk"
    assert sorted(updated_event["data"]["after"]["permissions"]) == ["audit:read", "users:read"]
    assert deleted_event["data"]["name"] == "helpdesk"


def test_api_key_creation_and_revocation_are_recorded(client, tenants):
    """AU-1, AU-2: the key's id, name, prefix and scopes, never the key."""
    owner = tenants["acme"]["owner"]
    created_by, revoked_by = agent("key-c"), agent("key-r")

    key = client.post(
        f"{SETTINGS}/api-keys",
        json={"name": "deploy", "scopes": ["users:read"]},
        headers=owner.headers | created_by,
    ).json
    revoked = client.delete(f"{SETTINGS}/api-keys/{key['id']}", headers=owner.headers | revoked_by)

    assert revoked.status_code == 204
    created_event = the_event(client, owner, created_by, "api_key.created")
    revoked_event = the_event(client, owner, revoked_by, "api_key.revoked")
    assert created_event["actor"] == revoked_event["actor"] == f"user:{owner.id}"
    assert created_event["data"] == {
        "api_key_id": key["id"],
        "name": "deploy",
        "prefix": key["prefix"],
        "scopes": ["users:read"],
    }
    assert revoked_event["data"]["api_key_id"] == key["id"]
    # ak_<prefix>_<secret>: the secret itself may hold "_", so cut after the prefix only.
    assert_secret_free(client, owner, key["key"], key["key"].split("_", 2)[2])


def test_an_organization_rename_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("rename")

    rename(client, acme, "Acme Rockets", headers)

    event = the_event(client, acme["owner"], headers, "organization.updated")
    assert event["actor"] == f"user:{acme['owner'].id}"
    assert event["data"] == {"name": {"from": "Acme", "to": "Acme Rockets"}}
