"""GET, POST, PATCH and DELETE /settings/roles: custom roles as data, JW-9, AC-3."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from tests.app.settings.conftest import AUDITOR_PERMISSIONS, SETTINGS, Account, Tenant

ROLES = f"{SETTINGS}/roles"
ME = "/api/v1/auth/me"
ROLE_FIELDS = {"id", "name", "builtin", "permissions", "created_at"}


def create_role(client, account: Account, name: str, permissions: list[str]):
    return client.post(
        ROLES, json={"name": name, "permissions": permissions}, headers=account.headers
    )


def roles_by_name(client, account: Account) -> dict[str, dict[str, Any]]:
    response = client.get(ROLES, headers=account.headers)
    assert response.status_code == 200, response.json
    return {role["name"]: role for role in response.json["roles"]}


def audit_events(client, tenant: Tenant, event: str) -> list[dict[str, Any]]:
    response = client.get(
        f"{SETTINGS}/audit-events", query_string={"limit": 100}, headers=tenant["owner"].headers
    )
    assert response.status_code == 200, response.json
    return [e for e in response.json["audit_events"] if e["event"] == event]


def permissions_of(client, account: Account) -> list[str]:
    response = client.get(ME, headers=account.headers)
    assert response.status_code == 200, response.json
    return response.json["user"]["permissions"]


def test_roles_lists_the_built_ins_first_then_the_organizations_own(client, tenants):
    acme = tenants["acme"]
    create_role(client, tenants["globex"]["owner"], "globex-only", [])
    every_code = [
        p["code"]
        for p in client.get(f"{SETTINGS}/permissions", headers=acme["auditor"].headers).json[
            "permissions"
        ]
    ]

    response = client.get(ROLES, headers=acme["auditor"].headers)

    assert response.status_code == 200
    listed = response.json["roles"]
    assert all(set(role) == ROLE_FIELDS for role in listed)
    assert [role["name"] for role in listed] == ["owner", "admin", "member", "auditor"]
    assert [role["builtin"] for role in listed] == [True, True, True, False]
    by_name = {role["name"]: role for role in listed}
    assert sorted(by_name["owner"]["permissions"]) == sorted(every_code)
    assert sorted(by_name["admin"]["permissions"]) == sorted(every_code)
    assert len(every_code) >= 6
    assert by_name["member"]["permissions"] == []
    assert by_name["auditor"]["permissions"] == AUDITOR_PERMISSIONS
    assert by_name["auditor"]["id"] == acme.auditor_role_id


def test_a_new_role_granted_to_a_member_works_on_their_existing_token(client, tenants):
    """JW-9: the database decides at request time; the token's `roles` claim is not read."""
    acme = tenants["acme"]
    holder = acme["member"]
    assert client.get(f"{SETTINGS}/api-keys", headers=holder.headers).status_code == 403

    created = create_role(client, acme["owner"], "key-keeper", ["api_keys:manage"])
    granted = client.patch(
        f"{SETTINGS}/members/{holder.id}",
        json={"roles": ["member", "key-keeper"]},
        headers=acme["owner"].headers,
    )

    assert created.status_code == 201, created.json
    assert set(created.json) == ROLE_FIELDS
    assert created.json["builtin"] is False
    assert created.json["permissions"] == ["api_keys:manage"]
    assert granted.status_code == 200, granted.json
    assert client.get(f"{SETTINGS}/api-keys", headers=holder.headers).status_code == 200
    assert permissions_of(client, holder) == ["api_keys:manage"]
    claims = jwt.decode(holder.access_token, options={"verify_signature": False})
    assert claims["roles"] == ["member"]  # the same, unchanged token
    event = audit_events(client, acme, "role.created")[0]  # newest first; the fixture's is older
    assert event["actor"] == f"user:{acme['owner'].id}"
    assert event["data"] == {
        "role_id": created.json["id"],
        "name": "key-keeper",
        "permissions": ["api_keys:manage"],
    }


@pytest.mark.parametrize("name", ["owner", "Owner", "ADMIN", "mEmBeR", "auditor"])
def test_a_built_in_name_in_any_case_or_an_existing_custom_name_is_409(client, tenants, name):
    acme = tenants["acme"]

    response = create_role(client, acme["owner"], name, ["users:read"])

    assert response.status_code == 409
    assert response.json["error"]["code"] == "role_name_taken"
    assert list(roles_by_name(client, acme["owner"])) == ["owner", "admin", "member", "auditor"]


@pytest.mark.parametrize("name", ["Admin", "auditor"])
def test_renaming_to_a_taken_name_is_409(client, tenants, name):
    acme = tenants["acme"]
    role = create_role(client, acme["owner"], "clerk", []).json

    response = client.patch(
        f"{ROLES}/{role['id']}", json={"name": name}, headers=acme["owner"].headers
    )

    assert response.status_code == 409
    assert response.json["error"]["code"] == "role_name_taken"
    assert "clerk" in roles_by_name(client, acme["owner"])


def test_the_same_name_in_another_organization_is_no_clash(client, tenants):
    """Both tenants already hold an `auditor`; a second shared name works as well."""
    first = create_role(client, tenants["acme"]["owner"], "clerk", [])
    second = create_role(client, tenants["globex"]["owner"], "clerk", [])

    assert (first.status_code, second.status_code) == (201, 201)


@pytest.mark.parametrize("permissions", [["nothing:here"], ["users:read", "commodities:write"]])
def test_an_unknown_permission_is_422_on_the_permissions_field(client, tenants, permissions):
    acme = tenants["acme"]
    clerk = create_role(client, acme["owner"], "clerk", []).json

    created = create_role(client, acme["owner"], "ghost", permissions)
    patched = client.patch(
        f"{ROLES}/{clerk['id']}", json={"permissions": permissions}, headers=acme["owner"].headers
    )

    for response in (created, patched):
        assert response.status_code == 422
        assert "permissions" in response.json["error"]["fields"]
    roles = roles_by_name(client, acme["owner"])
    assert "ghost" not in roles
    assert roles["clerk"]["permissions"] == []


def test_a_role_manager_cannot_put_a_permission_they_lack_into_a_role(client, tenants, join):
    """AC-3: the caller holds only `roles:manage`."""
    acme = tenants["acme"]
    assert create_role(client, acme["owner"], "role-maker", ["roles:manage"]).status_code == 201
    maker = join(acme, "maker@acme.example", "role-maker")
    own_role_id = roles_by_name(client, acme["owner"])["role-maker"]["id"]

    lacking = create_role(client, maker, "org-admin", ["org:manage"])
    held = create_role(client, maker, "helper", ["roles:manage"])
    widen_auditor = client.patch(
        f"{ROLES}/{acme.auditor_role_id}",
        json={"permissions": [*AUDITOR_PERMISSIONS, "org:manage"]},
        headers=maker.headers,
    )
    widen_own = client.patch(
        f"{ROLES}/{own_role_id}",
        json={"permissions": ["roles:manage", "users:manage"]},
        headers=maker.headers,
    )

    assert lacking.status_code == 403
    assert lacking.json["error"]["code"] == "forbidden"
    assert held.status_code == 201, held.json
    assert widen_auditor.status_code == 403
    assert widen_own.status_code == 403
    roles = roles_by_name(client, acme["owner"])
    assert "org-admin" not in roles
    assert roles["auditor"]["permissions"] == AUDITOR_PERMISSIONS
    assert permissions_of(client, maker) == ["roles:manage"]


def test_a_role_manager_cannot_change_or_delete_a_role_with_a_permission_they_lack(
    client, tenants, join
):
    """AC-3: changing a role acts on its holders; the caller holds only `roles:manage`, the
    auditor role carries `audit:read` and `users:read`."""
    acme = tenants["acme"]
    assert create_role(client, acme["owner"], "role-maker", ["roles:manage"]).status_code == 201
    maker = join(acme, "maker@acme.example", "role-maker")
    auditor = f"{ROLES}/{acme.auditor_role_id}"
    helper = create_role(client, maker, "helper", ["roles:manage"]).json

    renamed = client.patch(auditor, json={"name": "spectator"}, headers=maker.headers)
    narrowed = client.patch(auditor, json={"permissions": ["users:read"]}, headers=maker.headers)
    deleted = client.delete(auditor, headers=maker.headers)
    own = client.patch(f"{ROLES}/{helper['id']}", json={"name": "aide"}, headers=maker.headers)

    for response in (renamed, narrowed, deleted):
        assert response.status_code == 403, response.json
        assert response.json["error"]["code"] == "forbidden"
    assert roles_by_name(client, acme["owner"])["auditor"]["permissions"] == AUDITOR_PERMISSIONS
    assert permissions_of(client, acme["auditor"]) == AUDITOR_PERMISSIONS
    assert own.status_code == 200, own.json


def test_patch_renames_and_replaces_permissions_and_holders_follow_at_once(client, tenants, join):
    acme = tenants["acme"]
    role = create_role(client, acme["owner"], "clerk", ["users:read"]).json
    holder = join(acme, "clerk@acme.example", "clerk")
    events = f"{SETTINGS}/audit-events"
    assert client.get(events, headers=holder.headers).status_code == 403

    renamed = client.patch(
        f"{ROLES}/{role['id']}", json={"name": "senior-clerk"}, headers=acme["owner"].headers
    )
    replaced = client.patch(
        f"{ROLES}/{role['id']}",
        json={"permissions": ["audit:read", "users:read"]},
        headers=acme["owner"].headers,
    )

    assert renamed.status_code == 200, renamed.json
    assert renamed.json["name"] == "senior-clerk"
    assert renamed.json["permissions"] == ["users:read"]
    assert replaced.status_code == 200, replaced.json
    assert replaced.json["name"] == "senior-clerk"
    assert replaced.json["permissions"] == ["audit:read", "users:read"]
    assert client.get(events, headers=holder.headers).status_code == 200
    assert client.get(ME, headers=holder.headers).json["user"]["roles"] == ["senior-clerk"]
    updates = [e["data"] for e in audit_events(client, acme, "role.updated")]
    assert updates == [
        {
            "role_id": role["id"],
            "before": {"name": "senior-clerk", "permissions": ["users:read"]},
            "after": {"name": "senior-clerk", "permissions": ["audit:read", "users:read"]},
        },
        {
            "role_id": role["id"],
            "before": {"name": "clerk", "permissions": ["users:read"]},
            "after": {"name": "senior-clerk", "permissions": ["users:read"]},
        },
    ]


def test_an_empty_patch_is_422(client, tenants):
    acme = tenants["acme"]

    response = client.patch(
        f"{ROLES}/{acme.auditor_role_id}", json={}, headers=acme["owner"].headers
    )

    assert response.status_code == 422


@pytest.mark.parametrize("name", ["owner", "admin", "member"])
def test_built_in_roles_cannot_be_changed_or_deleted(client, tenants, name):
    acme = tenants["acme"]
    before = roles_by_name(client, acme["owner"])[name]

    patched = client.patch(
        f"{ROLES}/{before['id']}",
        json={"name": f"my-{name}", "permissions": []},
        headers=acme["owner"].headers,
    )
    deleted = client.delete(f"{ROLES}/{before['id']}", headers=acme["owner"].headers)

    assert patched.status_code == 403
    assert patched.json["error"]["code"] == "forbidden"
    assert deleted.status_code == 403
    assert roles_by_name(client, acme["owner"])[name] == before
    assert audit_events(client, acme, "role.updated") == []


def test_deleting_a_role_takes_it_from_its_holders_at_once(client, tenants):
    acme = tenants["acme"]
    holder = acme["auditor"]
    events = f"{SETTINGS}/audit-events"
    assert client.get(events, headers=holder.headers).status_code == 200

    response = client.delete(f"{ROLES}/{acme.auditor_role_id}", headers=acme["owner"].headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    assert client.get(events, headers=holder.headers).status_code == 403  # the same token
    user = client.get(ME, headers=holder.headers).json["user"]
    assert (user["roles"], user["permissions"]) == ([], [])
    assert "auditor" not in roles_by_name(client, acme["owner"])
    assert "auditor" in roles_by_name(client, tenants["globex"]["owner"])
    again = client.delete(f"{ROLES}/{acme.auditor_role_id}", headers=acme["owner"].headers)
    assert again.status_code == 404
    [event] = audit_events(client, acme, "role.deleted")
    assert event["actor"] == f"user:{acme['owner'].id}"
    assert event["data"] == {"role_id": acme.auditor_role_id, "name": "auditor"}
