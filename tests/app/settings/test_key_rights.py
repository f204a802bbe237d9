"""AK-3, AC-3: an API key never does more than the member it acts for may do now. A disabled
member's keys stop (401 token_revoked), a permission the member lost the key lost, a member who
left the organization takes their keys' rights along; the listing says which keys are affected."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.app.settings.conftest import (
    BUILTIN_PERMISSIONS,
    SETTINGS,
    Account,
    Tenant,
    key_header,
    wait_for_a_lock_waiter,
)
from tests.conftest import PASSWORD, auth_header

KEYS = f"{SETTINGS}/api-keys"
MEMBERS = f"{SETTINGS}/members"
ORGANIZATION = f"{SETTINGS}/organization"
EVERYTHING = list(BUILTIN_PERMISSIONS)


def admins_key(client, tenant: Tenant, scopes: list[str] = EVERYTHING) -> dict[str, Any]:
    response = client.post(
        KEYS, json={"name": "admin's", "scopes": scopes}, headers=tenant["admin"].headers
    )
    assert response.status_code == 201, response.json
    return response.json


def set_member(client, tenant: Tenant, account: Account, body: dict[str, Any]) -> None:
    response = client.patch(f"{MEMBERS}/{account.id}", json=body, headers=tenant["owner"].headers)
    assert response.status_code == 200, response.json


def listed(client, tenant: Tenant, key_id: str) -> dict[str, Any]:
    response = client.get(KEYS, headers=tenant["owner"].headers)
    assert response.status_code == 200, response.json
    return next(key for key in response.json["api_keys"] if key["id"] == key_id)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"]["code"] == code


def test_a_new_key_is_active_with_all_its_scopes_and_acts_for_its_maker(client, tenants):
    acme = tenants["acme"]

    created = admins_key(client, acme)

    assert created["acts_for"] == acme["admin"].id
    assert created["status"] == "active"
    assert created["effective_scopes"] == EVERYTHING
    assert listed(client, acme, created["id"]) | {"last_used_at": None} == {
        name: value for name, value in created.items() if name != "key"
    }


def test_a_disabled_members_key_stops_at_once(client, tenants):
    """The reported case: a disabled admin's full-scope key kept granting admin and minting keys."""
    acme = tenants["acme"]
    created = admins_key(client, acme)
    headers = key_header(created["key"])
    assert client.get(MEMBERS, headers=headers).status_code == 200

    set_member(client, acme, acme["admin"], {"is_active": False})
    read = client.get(ORGANIZATION, headers=headers)
    mint = client.post(KEYS, json={"name": "spare", "scopes": ["users:read"]}, headers=headers)
    promote = client.patch(
        f"{MEMBERS}/{acme['member'].id}", json={"roles": ["admin"]}, headers=headers
    )

    for response in (read, mint, promote):
        assert_error(response, 401, "token_revoked")
    shown = listed(client, acme, created["id"])
    assert (shown["status"], shown["effective_scopes"]) == ("member_disabled", [])
    assert [
        key["id"] for key in client.get(KEYS, headers=acme["owner"].headers).json["api_keys"]
    ] == [created["id"]]
    set_member(client, acme, acme["admin"], {"is_active": True})
    assert client.get(MEMBERS, headers=headers).status_code == 200
    assert listed(client, acme, created["id"])["status"] == "active"


def test_a_key_loses_what_its_member_loses(client, tenants):
    """Demoted from admin to the custom `auditor` role (users:read, audit:read)."""
    acme = tenants["acme"]
    created = admins_key(client, acme)
    headers = key_header(created["key"])

    set_member(client, acme, acme["admin"], {"roles": ["auditor"]})

    assert client.get(MEMBERS, headers=headers).status_code == 200
    assert client.get(f"{SETTINGS}/audit-events", headers=headers).status_code == 200
    assert_error(client.get(KEYS, headers=headers), 403, "forbidden")
    assert_error(
        client.patch(ORGANIZATION, json={"name": "Mine"}, headers=headers), 403, "forbidden"
    )
    shown = listed(client, acme, created["id"])
    assert shown["status"] == "active"
    assert shown["scopes"] == EVERYTHING  # what it was given, kept should the member regain it
    assert shown["effective_scopes"] == ["audit:read", "users:read"]


def test_a_key_follows_a_change_to_its_members_custom_role(client, tenants, join):
    acme = tenants["acme"]
    clerk = client.post(
        f"{SETTINGS}/roles",
        json={"name": "clerk", "permissions": ["api_keys:manage", "users:read"]},
        headers=acme["owner"].headers,
    ).json
    holder = join(acme, "clerk@acme.example", "clerk")
    made = client.post(
        KEYS, json={"name": "clerk's", "scopes": ["users:read"]}, headers=holder.headers
    )
    assert made.status_code == 201, made.json
    headers = key_header(made.json["key"])

    narrowed = client.patch(
        f"{SETTINGS}/roles/{clerk['id']}",
        json={"permissions": ["api_keys:manage"]},
        headers=acme["owner"].headers,
    )

    assert narrowed.status_code == 200, narrowed.json
    assert_error(client.get(MEMBERS, headers=headers), 403, "forbidden")
    assert listed(client, acme, made.json["id"])["effective_scopes"] == []


@pytest.mark.parametrize("how", ["deleted", "moved"])
def test_a_key_stops_when_its_member_leaves_the_organization(app, client, tenants, how):
    """The account is deleted, or its membership moves to another organization."""
    acme, globex = tenants["acme"], tenants["globex"]
    created = admins_key(client, acme)
    with app.app_context():
        if how == "deleted":
            statement = sa.text("DELETE FROM users WHERE id = :user")
        else:
            statement = sa.text(
                "UPDATE memberships SET organization_id = :org WHERE user_id = :user"
            )
        db.session.execute(statement, {"user": acme["admin"].id, "org": globex.id})
        db.session.commit()

    response = client.get(ORGANIZATION, headers=key_header(created["key"]))

    assert_error(response, 401, "token_revoked")
    shown = listed(client, acme, created["id"])
    assert (shown["status"], shown["effective_scopes"]) == ("member_left", [])


def test_a_key_made_by_a_key_acts_for_the_same_member(client, tenants):
    acme = tenants["acme"]
    parent = admins_key(client, acme)
    child = client.post(
        KEYS,
        json={"name": "child", "scopes": ["audit:read", "users:read"]},
        headers=key_header(parent["key"]),
    )
    assert child.status_code == 201, child.json
    headers = key_header(child.json["key"])
    assert (child.json["created_by"], child.json["acts_for"]) == (None, acme["admin"].id)

    set_member(client, acme, acme["admin"], {"roles": ["member"]})
    demoted = client.get(MEMBERS, headers=headers)
    set_member(client, acme, acme["admin"], {"roles": ["admin"], "is_active": False})
    disabled = client.get(MEMBERS, headers=headers)

    assert_error(demoted, 403, "forbidden")
    assert_error(disabled, 401, "token_revoked")
    assert listed(client, acme, child.json["id"])["status"] == "member_disabled"


def test_revoking_a_key_revokes_the_keys_it_made_and_theirs(client, tenants, make_api_key):
    """A leaked key that minted keys is not outlived by them (AK-2, AK-3)."""
    acme = tenants["acme"]
    parent = make_api_key(acme, ["api_keys:manage", "users:read"])
    other = make_api_key(acme, ["users:read"])

    def mint(maker: dict[str, Any], name: str) -> dict[str, Any]:
        made = client.post(
            KEYS,
            json={"name": name, "scopes": ["api_keys:manage", "users:read"]},
            headers=key_header(maker["key"]),
        )
        assert made.status_code == 201, made.json
        return made.json

    child = mint(parent, "child")
    grandchild = mint(child, "grandchild")
    assert (child["made_by_key"], grandchild["made_by_key"]) == (parent["id"], child["id"])

    revoked = client.delete(f"{KEYS}/{parent['id']}", headers=acme["owner"].headers)

    assert revoked.status_code == 204
    for key in (parent, child, grandchild):
        assert_error(client.get(MEMBERS, headers=key_header(key["key"])), 401, "token_revoked")
        assert listed(client, acme, key["id"])["status"] == "revoked"
    assert client.get(MEMBERS, headers=key_header(other["key"])).status_code == 200
    events = client.get(f"{SETTINGS}/audit-events?limit=100", headers=acme["owner"].headers)
    revocations = {
        event["data"]["api_key_id"]: event["data"].get("with_key")
        for event in events.json["audit_events"]
        if event["event"] == "api_key.revoked"
    }
    assert revocations == {
        parent["id"]: None,
        child["id"]: parent["id"],
        grandchild["id"]: parent["id"],
    }


def test_a_key_made_by_an_expiring_key_expires_no_later(client, tenants, make_api_key):
    acme = tenants["acme"]
    parent = make_api_key(acme, ["api_keys:manage"], expires_in_days=2)
    headers = key_header(parent["key"])

    def mint(**body: Any) -> dict[str, Any]:
        made = client.post(KEYS, json={"name": "child", "scopes": [], **body}, headers=headers)
        assert made.status_code == 201, made.json
        return made.json

    forever, longer, shorter = mint(), mint(expires_in_days=30), mint(expires_in_days=1)

    assert forever["expires_at"] == longer["expires_at"] == parent["expires_at"]
    assert shorter["expires_at"] < parent["expires_at"]


def test_expired_and_revoked_keys_say_so(client, tenants):
    acme = tenants["acme"]
    revoked = admins_key(client, acme, ["users:read"])
    expiring = client.post(
        KEYS,
        json={"name": "short", "scopes": ["users:read"], "expires_in_days": 1},
        headers=acme["admin"].headers,
    ).json
    assert (
        client.delete(f"{KEYS}/{revoked['id']}", headers=acme["owner"].headers).status_code == 204
    )
    assert client.post("/_testing/clock", json={"offset_seconds": 86401}).status_code == 200
    login = {"login": acme["owner"].email, "password": PASSWORD}
    token = client.post("/api/v1/auth/login", json=login).json["access_token"]

    keys = client.get(KEYS, headers=auth_header(token)).json["api_keys"]

    shown = {key["id"]: (key["status"], key["effective_scopes"]) for key in keys}
    assert shown == {revoked["id"]: ("revoked", []), expiring["id"]: ("expired", [])}


def test_a_key_whose_member_is_demoted_while_it_waits_for_the_lock_cannot_act(app, tenants):
    """AC-3: a key's rights are re-read under the organization's lock, like a member's."""
    acme = tenants["acme"]
    client = app.test_client()
    created = admins_key(client, acme)
    with app.app_context():
        engine = db.engine
    answers: list[Any] = []
    request = threading.Thread(
        target=lambda: answers.append(
            app.test_client().patch(
                f"{MEMBERS}/{acme['member'].id}",
                json={"is_active": False},
                headers=key_header(created["key"]),
            )
        )
    )
    with engine.connect() as holder:
        holder.execute(
            sa.text("SELECT id FROM organizations WHERE id = :id FOR UPDATE"), {"id": acme.id}
        )
        request.start()
        wait_for_a_lock_waiter(engine)
        holder.execute(  # the owner demotes the key's member while the PATCH waits
            sa.text(
                "UPDATE membership_roles SET role_id = (SELECT id FROM roles"
                " WHERE name = 'member' AND organization_id IS NULL)"
                " WHERE membership_id = (SELECT id FROM memberships WHERE user_id = :user)"
            ),
            {"user": acme["admin"].id},
        )
        holder.commit()
    request.join(timeout=10)

    assert_error(answers[0], 403, "forbidden")
    assert client.get("/api/v1/auth/me", headers=acme["member"].headers).status_code == 200
