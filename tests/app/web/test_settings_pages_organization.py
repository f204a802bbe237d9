"""The /settings pages driven like a browser: the set-up these tests share, and why, is
test_settings_pages_account.py's docstring.

This part: the organization's pages: API keys, members, roles."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.app.settings import conftest as settings_fixtures
from tests.app.settings.conftest import SETTINGS, Tenant, key_header
from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    csrf_token,
    field_error,
    input_tag,
    notice,
    open_browser,
    submit,
    text,
)

# The two-tenant fixtures of tests/app/settings, used here through the browser.
tenants = settings_fixtures.tenants
join = settings_fixtures.join


def member_roles(client: FlaskClient, tenant: Tenant, user_id: str) -> list[str]:
    response = client.get(f"{SETTINGS}/members?limit=100", headers=tenant["owner"].headers)
    assert response.status_code == 200, response.json
    return next(m["roles"] for m in response.json["members"] if m["id"] == user_id)


def roles_by_name(client: FlaskClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    response = client.get(f"{SETTINGS}/roles", headers=tenant["owner"].headers)
    assert response.status_code == 200, response.json
    return {role["name"]: role for role in response.json["roles"]}


# API keys


def create_key_form(client: FlaskClient, scopes: list[str], name: str = "ci") -> TestResponse:
    return submit(
        client,
        "/settings/api-keys",
        {"name": name, "scopes": scopes, "scopes_present": "1"},
    )


def new_key(body: str) -> str:
    match = re.search(r'data-testid="new-key">([^<]+)<', body)
    assert match is not None, "no new key on the page"
    return match.group(1).strip()


def test_an_owner_creates_a_key_shown_once_that_works_on_the_api(client, as_role, tenants):
    """AK-1: shown in the answer that creates it, never again."""
    owner = as_role("owner")

    response = create_key_form(owner, ["users:read"])

    body = assert_page(response)
    key = new_key(body)
    assert client.get(f"{SETTINGS}/members", headers=key_header(key)).status_code == 200
    assert client.get(f"{SETTINGS}/audit-events", headers=key_header(key)).status_code == 403
    again = assert_page(owner.get("/settings/api-keys"))
    assert key not in again
    assert 'data-testid="new-key"' not in again
    listed = client.get(f"{SETTINGS}/api-keys", headers=tenants["acme"]["owner"].headers)
    assert [(k["name"], k["scopes"]) for k in listed.json["api_keys"]] == [("ci", ["users:read"])]
    assert listed.json["api_keys"][0]["prefix"] in again


def test_a_revoked_key_fails_at_once(client, as_role, tenants):
    """AK-2."""
    owner = as_role("owner")
    key = new_key(text(create_key_form(owner, ["users:read"])))
    key_id = client.get(f"{SETTINGS}/api-keys", headers=tenants["acme"]["owner"].headers).json[
        "api_keys"
    ][0]["id"]

    response = submit(owner, f"/settings/api-keys/{key_id}/revoke", {}, page="/settings/api-keys")

    assert_redirect(response, "/settings/api-keys")
    body = assert_page(owner.get("/settings/api-keys"))
    assert notice(body) == "API key revoked."
    assert "revoked" in body
    assert client.get(f"{SETTINGS}/members", headers=key_header(key)).status_code == 401


def test_the_page_shows_which_keys_their_members_rights_stopped_or_narrowed(
    client, as_role, tenants
):
    """AK-3: a disabled member's key is marked stopped, a demoted member's key its lost scopes."""
    acme = tenants["acme"]
    assert new_key(text(create_key_form(as_role("admin"), ["org:manage", "users:read"])))
    owner_headers = acme["owner"].headers
    members = f"{SETTINGS}/members"
    demoted = client.patch(
        f"{members}/{acme['admin'].id}", json={"roles": ["auditor"]}, headers=owner_headers
    )
    assert demoted.status_code == 200, demoted.json

    narrowed = assert_page(as_role("owner").get("/settings/api-keys"))
    disabled = client.patch(
        f"{members}/{acme['admin'].id}", json={"is_active": False}, headers=owner_headers
    )
    assert disabled.status_code == 200, disabled.json
    stopped = assert_page(as_role("owner").get("/settings/api-keys"))

    assert re.search(r'data-testid="lost-scopes">[^<]*org:manage', narrowed)
    assert 'data-testid="key-stopped"' not in narrowed
    assert re.search(r'data-testid="key-stopped">[^<]*disabled', stopped)


def test_a_scope_the_caller_lacks_is_refused_in_the_form(app, client, tenants, join):
    """AK-3 / AC-3: the page offers only the caller's permissions, and a forged one is 403."""
    acme = tenants["acme"]
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "keymaster", "permissions": ["api_keys:manage"]},
        headers=acme["owner"].headers,
    )
    assert role.status_code == 201, role.json
    keymaster = join(acme, "keys@acme.example", "keymaster")
    keys_browser = open_browser(app, keymaster.email)
    page = assert_page(keys_browser.get("/settings/api-keys"))
    assert 'value="api_keys:manage"' in page
    assert 'value="users:manage"' not in page

    response = create_key_form(keys_browser, ["users:manage"], name="sneaky")

    body = assert_page(response, 403)
    assert alert(body) == "You cannot grant permissions you do not have: users:manage."
    assert 'data-testid="new-key"' not in body
    assert 'value="sneaky"' in input_tag(body, "name")
    listed = client.get(f"{SETTINGS}/api-keys", headers=acme["owner"].headers)
    assert listed.json["api_keys"] == []


def test_the_api_keys_page_is_a_403_page_for_a_member(as_role):
    """HTML, not the JSON envelope."""
    body = assert_page(as_role("member").get("/settings/api-keys"), 403)

    assert "You do not have permission to do this." in body
    assert "API keys" not in body  # nor in the settings menu


def test_a_member_posting_the_key_form_gets_the_403_page_and_no_key(client, as_role, tenants):
    member = as_role("member")
    token = csrf_token(member, "/settings/profile")

    response = member.post(
        "/settings/api-keys",
        data={"name": "x", "scopes": ["users:read"], "scopes_present": "1", "csrf_token": token},
    )

    body = assert_page(response, 403)
    assert "You do not have permission to do this." in body
    listed = client.get(f"{SETTINGS}/api-keys", headers=tenants["acme"]["owner"].headers)
    assert listed.json["api_keys"] == []


# Members


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_see_the_members_with_change_forms(as_role, tenants, role):
    body = assert_page(as_role(role).get("/settings/members"))

    for account in tenants["acme"].accounts.values():
        assert account.email in body
        assert f'action="/settings/members/{account.id}"' in body
    assert "globex" not in body  # AC-2


def test_an_auditor_sees_the_members_without_change_forms(as_role, tenants):
    body = assert_page(as_role("auditor").get("/settings/members"))

    for account in tenants["acme"].accounts.values():
        assert account.email in body
    assert 'action="/settings/members/' not in body
    assert 'name="roles"' not in body


def test_the_members_page_is_a_403_page_for_a_member(as_role):
    body = assert_page(as_role("member").get("/settings/members"), 403)

    assert "You do not have permission to do this." in body


def test_an_owner_changes_a_members_roles_through_the_form(client, as_role, tenants):
    acme = tenants["acme"]
    target = acme["member"]

    response = submit(
        as_role("owner"),
        f"/settings/members/{target.id}",
        {"roles": ["member", "auditor"], "is_active": "true"},
        page="/settings/members",
    )

    assert_redirect(response, "/settings/members")
    assert sorted(member_roles(client, acme, target.id)) == ["auditor", "member"]


def test_a_refused_member_change_comes_back_in_an_error_box_and_changes_nothing(
    client, as_role, tenants
):
    """AC-3: an admin cannot grant the owner role."""
    acme = tenants["acme"]
    admin = as_role("admin")

    response = submit(
        admin,
        f"/settings/members/{acme['member'].id}",
        {"roles": ["member", "owner"], "is_active": "true"},
        page="/settings/members",
    )

    assert_redirect(response, "/settings/members")
    body = assert_page(admin.get("/settings/members"))
    assert alert(body) == "Only an owner can grant or remove the owner role."
    assert member_roles(client, acme, acme["member"].id) == ["member"]
    assert 'role="alert"' not in assert_page(admin.get("/settings/members"))  # shown once


# Roles


def role_form(name: str, permissions: list[str]) -> dict[str, Any]:
    return {"name": name, "permissions": permissions, "permissions_present": "1"}


def test_an_owner_creates_edits_and_deletes_a_custom_role(client, as_role, tenants):
    acme = tenants["acme"]
    owner = as_role("owner")

    created = submit(owner, "/settings/roles", role_form("support", ["users:read"]))

    assert_redirect(created, "/settings/roles")
    body = assert_page(owner.get("/settings/roles"))
    assert notice(body) == "Role created."
    support = roles_by_name(client, acme)["support"]
    assert support["permissions"] == ["users:read"]
    assert f'action="/settings/roles/{support["id"]}"' in body

    edited = submit(
        owner,
        f"/settings/roles/{support['id']}",
        role_form("support", ["audit:read", "users:read"]),
        page="/settings/roles",
    )

    assert_redirect(edited, "/settings/roles")
    assert notice(assert_page(owner.get("/settings/roles"))) == "Role saved."
    assert roles_by_name(client, acme)["support"]["permissions"] == ["audit:read", "users:read"]

    deleted = submit(owner, f"/settings/roles/{support['id']}/delete", {}, page="/settings/roles")

    assert_redirect(deleted, "/settings/roles")
    body = assert_page(owner.get("/settings/roles"))
    assert notice(body) == "Role deleted."
    assert "support" not in roles_by_name(client, acme)
    assert support["id"] not in body


def test_a_taken_role_name_is_409_next_to_the_name_field(as_role):
    owner = as_role("owner")

    response = submit(owner, "/settings/roles", role_form("auditor", ["users:read"]))

    body = assert_page(response, 409)
    assert field_error(body, "name")
    assert 'value="auditor"' in input_tag(body, "name")
    assert re.search(r'value="users:read" checked', body)


def test_built_in_roles_have_no_edit_form(client, as_role, tenants):
    body = assert_page(as_role("owner").get("/settings/roles"))

    roles = roles_by_name(client, tenants["acme"])
    for name in ("owner", "admin", "member"):
        assert roles[name]["builtin"]
        assert f"/settings/roles/{roles[name]['id']}" not in body
    assert f'action="/settings/roles/{roles["auditor"]["id"]}"' in body


def test_an_auditor_sees_the_roles_without_forms(as_role):
    body = assert_page(as_role("auditor").get("/settings/roles"))

    assert "auditor" in body
    assert 'action="/settings/roles' not in body


def test_the_roles_page_is_a_403_page_for_a_member(as_role):
    body = assert_page(as_role("member").get("/settings/roles"), 403)

    assert "You do not have permission to do this." in body


def test_an_auditor_posting_the_role_form_gets_the_403_page(client, app, tenants):
    """Reading roles (users:read) is not managing them (roles:manage)."""
    auditor = open_browser(app, tenants["acme"]["auditor"].email)
    token = csrf_token(auditor, "/settings/profile")

    response = auditor.post(
        "/settings/roles", data={**role_form("mine", ["users:read"]), "csrf_token": token}
    )

    assert_page(response, 403)
    assert "mine" not in roles_by_name(client, tenants["acme"])
