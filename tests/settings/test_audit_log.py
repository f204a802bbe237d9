"""The audit trail: each security event is recorded with who, where and what (AU-1), never a
secret (AU-2), and read newest first, page by page, by holders of audit:read only (AC-1, AC-2)."""

import json

import pytest
import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header
from tests.settings.conftest import SETTINGS, key_header

EVENTS = f"{SETTINGS}/audit-events"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "an entirely different passphrase"
WRONG_PASSWORD = "not the passphrase at all, sorry"
TOKEN_NAMES = ("access_token", "refresh_token")


def agent(test_name):
    return {"User-Agent": f"audit-probe/{test_name}"}


def whole_log(client, reader):
    """Every event the reader's organization holds, and the raw JSON it came in."""
    response = client.get(f"{EVENTS}?limit=100", headers=reader.headers)
    assert response.status_code == 200, response.json
    assert response.json["next_cursor"] is None  # one page holds the whole log
    return response.json["audit_events"], response.get_data(as_text=True)


def the_event(client, reader, headers, name):
    """The one event recorded by the request that carried `headers`' User-Agent."""
    events, _raw = whole_log(client, reader)
    mine = [event for event in events if event["user_agent"] == headers["User-Agent"]]
    assert [event["event"] for event in mine] == [name], mine
    assert mine[0]["ip"] == "127.0.0.1"
    return mine[0]


def assert_secret_free(client, reader, *secrets):
    """AU-2: none of the secrets, nor a token's signature, is anywhere in the log."""
    _events, raw = whole_log(client, reader)
    for secret in secrets:
        assert secret not in raw
        if secret.count(".") == 2:  # a JWT: its signature alone would be a leak too
            assert secret.rsplit(".", 1)[1] not in raw


def log_in(client, email, headers=None, password=PASSWORD):
    response = client.post(LOGIN, json={"login": email, "password": password}, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def walk(client, reader, limit):
    """Every page at `limit`, as a list of pages of event ids."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = client.get(EVENTS, query_string=query, headers=reader.headers)
        assert response.status_code == 200, response.json
        pages.append([event["id"] for event in response.json["audit_events"]])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages


def rename(client, tenant, name, headers=None):
    response = client.patch(
        f"{SETTINGS}/organization",
        json={"name": name},
        headers=tenant["owner"].headers | (headers or {}),
    )
    assert response.status_code == 200, response.json


# AU-1: each action, its event


def test_login_success_is_recorded(client, tenants):
    acme, headers = tenants["acme"], agent("login-success")
    member = acme["member"]

    pair = log_in(client, member.email, headers)

    event = the_event(client, acme["owner"], headers, "login.succeeded")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert set(event["data"]) == {"session_id"}
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
    assert event["data"] == {"reason": "bad_password"}
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


def test_a_denied_request_is_recorded(client, tenants):
    """AU-1: a 403 is a security event (authz_fail)."""
    acme, headers = tenants["acme"], agent("denied")
    member = acme["member"]

    response = client.get(f"{SETTINGS}/api-keys", headers=member.headers | headers)

    assert response.status_code == 403
    event = the_event(client, acme["owner"], headers, "access.denied")
    assert event["actor"] == f"user:{member.id}"
    assert event["user_id"] == member.id
    assert event["data"] == {
        "permission": "api_keys:manage",
        "method": "GET",
        "path": f"{SETTINGS}/api-keys",
    }


def refused(client, tenant, account, method, path, body, test_name):
    """Send a request the service refuses; its `access.denied` event (with no other event)."""
    headers = agent(test_name)
    response = client.open(path, method=method, json=body, headers=account.headers | headers)
    assert response.status_code in (403, 404, 409), response.json
    event = the_event(client, tenant["owner"], headers, "access.denied")
    assert event["actor"] == f"user:{account.id}"
    assert event["user_id"] == account.id
    assert event["data"]["code"] == response.json["error"]["code"]
    assert event["data"]["reason"] == response.json["error"]["message"]
    assert (event["data"]["method"], event["data"]["path"]) == (method, path)
    return event["data"]


def test_a_services_refusals_of_organization_actions_are_recorded(client, tenants, join):
    """AU-1: beyond the permission guard's 403s, the rules a service enforces (AC-2, AC-3)."""
    acme, globex = tenants["acme"], tenants["globex"]
    admin, owner = acme["admin"], acme["owner"]
    members = f"{SETTINGS}/members"
    roles = client.get(f"{SETTINGS}/roles", headers=owner.headers).json["roles"]
    builtin_admin = next(role["id"] for role in roles if role["name"] == "admin")
    keymaster = client.post(
        f"{SETTINGS}/roles",
        json={"name": "keymaster", "permissions": ["api_keys:manage"]},
        headers=owner.headers,
    )
    assert keymaster.status_code == 201, keymaster.json
    keys = join(acme, "keys@acme.example", "keymaster")

    on_owner = refused(
        client, acme, admin, "PATCH", f"{members}/{owner.id}", {"is_active": False}, "owner"
    )
    cross_tenant = refused(
        client, acme, admin, "PATCH", f"{members}/{globex['member'].id}", {"roles": []}, "cross"
    )
    last_owner = refused(
        client, acme, owner, "PATCH", f"{members}/{owner.id}", {"roles": ["admin"]}, "last"
    )
    builtin = refused(
        client, acme, admin, "DELETE", f"{SETTINGS}/roles/{builtin_admin}", None, "builtin"
    )
    scope = refused(
        client,
        acme,
        keys,
        "POST",
        f"{SETTINGS}/api-keys",
        {"name": "wider", "scopes": ["org:manage"]},
        "scope",
    )

    assert on_owner | {"reason": ""} == {
        "action": "member.update",
        "code": "forbidden",
        "reason": "",
        "target": owner.id,
        "method": "PATCH",
        "path": f"{members}/{owner.id}",
    }
    assert (cross_tenant["action"], cross_tenant["code"]) == ("member.update", "not_found")
    assert cross_tenant["target"] == globex["member"].id
    assert (last_owner["action"], last_owner["code"]) == ("member.update", "last_owner")
    assert (builtin["action"], builtin["code"], builtin["target"]) == (
        "role.delete",
        "forbidden",
        builtin_admin,
    )
    assert (scope["action"], scope["code"]) == ("api_key.create", "forbidden")
    assert "org:manage" in scope["reason"]
    theirs = client.get(EVENTS, headers=globex["owner"].headers).json["audit_events"]
    assert "access.denied" not in {event["event"] for event in theirs}


def test_a_refusal_rolls_back_the_action_and_an_invalid_request_is_no_refusal(client, tenants):
    """The refused change is not made; a 422 (an unknown role name) is not audited."""
    acme = tenants["acme"]
    owner, member = acme["owner"], acme["member"]
    path = f"{SETTINGS}/members/{owner.id}"

    last = client.patch(path, json={"roles": ["admin"]}, headers=owner.headers)
    invalid = client.patch(
        f"{SETTINGS}/members/{member.id}",
        json={"roles": ["no-such-role"]},
        headers=owner.headers | agent("invalid"),
    )

    assert last.status_code == 409
    assert client.get("/api/v1/auth/me", headers=owner.headers).json["user"]["roles"] == ["owner"]
    assert invalid.status_code == 422
    events, _raw = whole_log(client, owner)
    assert [e for e in events if e["user_agent"] == agent("invalid")["User-Agent"]] == []


def test_no_secret_reaches_the_audit_table(app, client, tenants, make_user):
    """AU-2 across every organization, the events of unknown accounts included."""
    acme = tenants["acme"]
    user = make_user(email="sam@acme.example", organization=acme.id)
    pair = log_in(client, user["email"])
    refreshed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).json
    client.post(LOGIN, json={"login": "nobody@acme.example", "password": WRONG_PASSWORD})
    client.post(LOGIN, json={"login": PASSWORD, "password": PASSWORD})  # password typed as login
    changed = client.post(
        f"{SETTINGS}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth_header(refreshed["access_token"]),
    )
    assert changed.status_code == 204
    key = client.post(
        f"{SETTINGS}/api-keys",
        json={"name": "k", "scopes": ["audit:read"]},
        headers=acme["owner"].headers,
    ).json["key"]
    denied = client.get(f"{SETTINGS}/api-keys", headers=key_header(key))  # audited by the key
    assert denied.status_code == 403
    secrets = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, key, key.split("_", 2)[2]]  # the secret
    secrets += [tokens[name] for tokens in (pair, refreshed) for name in TOKEN_NAMES]
    for tenant in tenants.values():
        secrets += [a.access_token for a in tenant.accounts.values()]
        secrets += [a.refresh_token for a in tenant.accounts.values()]

    with app.app_context():
        rows = db.session.execute(sa.text("SELECT * FROM audit_events")).mappings().all()
    table = json.dumps([dict(row) for row in rows], default=str)

    assert len(rows) > 20
    for secret in secrets:
        assert secret not in table
        assert secret.rsplit(".", 1)[-1] not in table
    assert_secret_free(client, acme["owner"], *secrets)


# Reading the log


def test_events_come_newest_first(client, tenants):
    acme = tenants["acme"]
    for name in ("First", "Second", "Third"):
        rename(client, acme, name)

    events, _raw = whole_log(client, acme["owner"])

    assert [event["created_at"] for event in events] == sorted(
        (event["created_at"] for event in events), reverse=True
    )
    renames = [
        event["data"]["name"]["to"] for event in events if event["event"] == "organization.updated"
    ]
    assert renames == ["Third", "Second", "First"]


def test_pages_of_two_walk_every_event_exactly_once(client, tenants):
    acme = tenants["acme"]
    for name in ("One", "Two", "Three"):
        rename(client, acme, name)
    everything = [event["id"] for event in whole_log(client, acme["owner"])[0]]

    pages = walk(client, acme["owner"], limit=2)

    assert len(everything) >= 10
    assert [event_id for page in pages for event_id in page] == everything
    assert all(len(page) == 2 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 2


def test_paging_is_stable_while_events_are_recorded(client, tenants):
    """Events recorded between pages neither repeat nor push out older ones."""
    acme = tenants["acme"]
    owner = acme["owner"]
    before = [event["id"] for event in whole_log(client, owner)[0]]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(EVENTS, query_string=query, headers=owner.headers)
        assert response.status_code == 200
        seen += [event["id"] for event in response.json["audit_events"]]
        cursor, pages = response.json["next_cursor"], pages + 1
        if cursor is None:
            break
        rename(client, acme, f"Acme {pages}")  # a newer event lands at the head of the log

    assert seen == before
    assert len(whole_log(client, owner)[0]) == len(before) + pages - 1


def test_another_organizations_events_never_appear(client, tenants):
    """AC-2: not in the log, and not through a cursor taken from the other log either."""
    acme, globex = tenants["acme"], tenants["globex"]
    rename(client, acme, "Acme Secret Project")
    acme_ids = {account.id for account in acme.accounts.values()} | {acme.id}
    acme_events = {event["id"] for event in whole_log(client, acme["owner"])[0]}
    acme_cursor = client.get(EVENTS, query_string={"limit": 1}, headers=acme["owner"].headers)

    globex_events, raw = whole_log(client, globex["owner"])
    through_cursor = client.get(
        EVENTS,
        query_string={"cursor": acme_cursor.json["next_cursor"]},
        headers=globex["owner"].headers,
    )

    assert globex_events
    assert not acme_events & {event["id"] for event in globex_events}
    assert not acme_events & {event["id"] for event in through_cursor.json["audit_events"]}
    for leaked in [*acme_ids, "Acme Secret Project", "acme.example"]:
        assert leaked not in raw
        assert leaked not in through_cursor.get_data(as_text=True)


@pytest.mark.parametrize(("role", "status"), [("member", 403), ("auditor", 200), ("admin", 200)])
def test_reading_the_log_needs_audit_read(client, tenants, role, status):
    """AC-1."""
    response = client.get(EVENTS, headers=tenants["acme"][role].headers)

    assert response.status_code == status
    if status == 403:
        assert response.json["error"]["code"] == "forbidden"
        assert "audit_events" not in response.json


def test_reading_the_log_without_credentials_is_401(client):
    response = client.get(EVENTS)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
