"""The audit trail: each security event is recorded with who, where and what (AU-1), never a
secret (AU-2), and read newest first, page by page, by holders of audit:read only (AC-1, AC-2).

This part: denied requests and refusals recorded, and no secret in the audit table.
"""

import json

import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.app.settings.audit_log import (
    EVENTS,
    LOGIN,
    NEW_PASSWORD,
    REFRESH,
    TOKEN_NAMES,
    WRONG_PASSWORD,
    agent,
    assert_secret_free,
    log_in,
    the_event,
    whole_log,
)
from tests.app.settings.conftest import SETTINGS, key_header
from tests.conftest import PASSWORD, auth_header


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
