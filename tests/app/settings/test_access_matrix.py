"""The access-control matrix of organization administration: AC-1 (each route needs its
permission, for users and for API keys alike), AC-2 (another organization's objects answer 404
and stay untouched), AU-1 (a 403 is audited) and the statement budget of authentication."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.app.settings.conftest import (
    AUDITOR_PERMISSIONS,
    BUILTIN_PERMISSIONS,
    ROLES,
    SETTINGS,
    key_header,
)

ROLE_PERMISSIONS = {
    "owner": set(BUILTIN_PERMISSIONS),
    "admin": set(BUILTIN_PERMISSIONS),
    "member": set(),
    "auditor": set(AUDITOR_PERMISSIONS),
}


class Route(NamedTuple):
    method: str
    path: str  # `{member}`, `{role}` and `{key}` are filled with fresh ids of the caller's org
    body: dict[str, Any] | None
    permission: str | None  # None: any member of the organization, or any of its keys
    success: int


# Bodies grant only the route's own permission, so a caller allowed on the route may send them.
NEW_ROLE = {"name": "reviewer", "permissions": ["roles:manage"]}
NEW_KEY = {"name": "ci", "scopes": ["api_keys:manage"]}
ROUTES = [
    Route("GET",    "/organization",     None,                    None,              200),
    Route("PATCH",  "/organization",     {"name": "Renamed Inc"}, "org:manage",      200),
    Route("GET",    "/members",          None,                    "users:read",      200),
    Route("PATCH",  "/members/{member}", {"is_active": False},    "users:manage",    200),
    Route("GET",    "/permissions",      None,                    "users:read",      200),
    Route("GET",    "/roles",            None,                    "users:read",      200),
    Route("POST",   "/roles",            NEW_ROLE,                "roles:manage",    201),
    Route("PATCH",  "/roles/{role}",     {"name": "renamed"},     "roles:manage",    200),
    Route("DELETE", "/roles/{role}",     None,                    "roles:manage",    204),
    Route("GET",    "/api-keys",         None,                    "api_keys:manage", 200),
    Route("POST",   "/api-keys",         NEW_KEY,                 "api_keys:manage", 201),
    Route("DELETE", "/api-keys/{key}",   None,                    "api_keys:manage", 204),
    Route("GET",    "/audit-events",     None,                    "audit:read",      200),
]  # fmt: skip


def _route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


def _target_path(route: Route, tenant, make_user, make_api_key, client) -> str:
    """The route's path with a fresh object of the tenant's own for each placeholder (a role
    carrying only the route's own permission: changing a role needs holding all it carries)."""
    ids: dict[str, str] = {}
    if "{member}" in route.path:
        slug = tenant.name.lower()
        ids["member"] = make_user(
            email=f"target@{slug}.example", organization=tenant.id, role_names=("member",)
        )["id"]
    if "{role}" in route.path:
        created = client.post(
            f"{SETTINGS}/roles",
            json={"name": "target", "permissions": ["roles:manage"]},
            headers=tenant["owner"].headers,
        )
        assert created.status_code == 201, created.json
        ids["role"] = created.json["id"]
    if "{key}" in route.path:
        ids["key"] = make_api_key(tenant, [])["id"]
    return SETTINGS + route.path.format(**ids)


def _call(client, route: Route, path: str, headers: dict[str, str]):
    return client.open(path, method=route.method, json=route.body, headers=headers)


def _assert_status(response, allowed: bool, route: Route) -> None:
    if allowed:
        assert response.status_code == route.success, response.json
    else:
        assert response.status_code == 403, response.json
        assert response.json["error"]["code"] == "forbidden"


# AC-1: routes x roles


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_each_role_reaches_exactly_the_routes_its_permissions_allow(
    client, tenants, make_user, make_api_key, route, role
):
    """AC-1: 200/201/204 with the route's permission, 403 `forbidden` without it."""
    acme = tenants["acme"]
    path = _target_path(route, acme, make_user, make_api_key, client)

    response = _call(client, route, path, acme[role].headers)

    allowed = route.permission is None or route.permission in ROLE_PERMISSIONS[role]
    _assert_status(response, allowed, route)


@pytest.mark.parametrize("scope", BUILTIN_PERMISSIONS)
@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_an_api_key_reaches_exactly_the_routes_of_its_one_scope(
    client, tenants, make_user, make_api_key, route, scope
):
    """AC-1, AK-3: a key acts with exactly its scopes; GET /organization is open to any key."""
    acme = tenants["acme"]
    key = make_api_key(acme, [scope])["key"]
    path = _target_path(route, acme, make_user, make_api_key, client)

    response = _call(client, route, path, key_header(key))

    _assert_status(response, route.permission in (None, scope), route)


# AC-2: another organization's objects


CROSS_ORG_WRITES = [
    Route("PATCH", "/members/{member}", {"is_active": False}, "users:manage", 404),
    Route("PATCH", "/members/{member}", {"roles": ["admin"]}, "users:manage", 404),
    Route("PATCH", "/roles/{role}", {"name": "hijacked", "permissions": []}, "roles:manage", 404),
    Route("DELETE", "/roles/{role}", None, "roles:manage", 404),
    Route("DELETE", "/api-keys/{key}", None, "api_keys:manage", 404),
]


@pytest.fixture
def acme_caller(request, tenants, make_api_key) -> dict[str, str]:
    """Acme's admin (a user) or an Acme key with every built-in scope: both hold every
    permission the cross-organization attempts need."""
    if request.param == "user":
        return tenants["acme"]["admin"].headers
    return key_header(make_api_key(tenants["acme"], list(BUILTIN_PERMISSIONS))["key"])


def _assert_globex_unchanged(client, globex, globex_key: str) -> None:
    """Globex's member, role and key are as they were before Acme's attempt."""
    me = client.get("/api/v1/auth/me", headers=globex["member"].headers)
    assert me.status_code == 200, me.json  # still active, session not revoked
    assert me.json["user"]["roles"] == ["member"]
    members = client.get(f"{SETTINGS}/members", headers=globex["owner"].headers).json["members"]
    member = next(m for m in members if m["id"] == globex["member"].id)
    assert (member["is_active"], member["roles"]) == (True, ["member"])
    roles = client.get(f"{SETTINGS}/roles", headers=globex["owner"].headers).json["roles"]
    role = next(r for r in roles if r["id"] == globex.auditor_role_id)
    assert (role["name"], role["permissions"]) == ("auditor", sorted(AUDITOR_PERMISSIONS))
    auditor = client.get("/api/v1/auth/me", headers=globex["auditor"].headers).json["user"]
    assert auditor["roles"] == ["auditor"]
    organization = client.get(f"{SETTINGS}/organization", headers=key_header(globex_key))
    assert organization.status_code == 200, organization.json
    assert organization.json["id"] == globex.id


@pytest.mark.parametrize("acme_caller", ["user", "api_key"], indirect=True)
@pytest.mark.parametrize("route", CROSS_ORG_WRITES, ids=lambda r: f"{_route_id(r)} {r.body}")
def test_another_orgs_member_role_or_key_is_404_and_left_unchanged(
    client, tenants, make_api_key, acme_caller, route
):
    """AC-2: a caller holding the permission gets 404 `not_found`, never 403, and nothing in
    the other organization changes."""
    globex = tenants["globex"]
    globex_key = make_api_key(globex, ["users:read"])
    ids = {"member": globex["member"].id, "role": globex.auditor_role_id, "key": globex_key["id"]}

    response = _call(client, route, SETTINGS + route.path.format(**ids), acme_caller)

    assert response.status_code == 404, response.json
    assert response.json["error"]["code"] == "not_found"
    _assert_globex_unchanged(client, globex, globex_key["key"])


LISTS = [
    ("/members", "members"),
    ("/roles", "roles"),
    ("/api-keys", "api_keys"),
    ("/audit-events", "audit_events"),
]


def _own_ids(response, field: str) -> set[str]:
    assert response.status_code == 200, response.json
    assert response.json.get("next_cursor") is None  # the whole list fits in one page
    # Built-in roles are shared by every organization; only custom roles belong to one.
    return {item["id"] for item in response.json[field] if not item.get("builtin")}


@pytest.mark.parametrize("acme_caller", ["user", "api_key"], indirect=True)
@pytest.mark.parametrize(("path", "field"), LISTS, ids=[path for path, _ in LISTS])
def test_lists_never_show_another_orgs_objects(
    client, tenants, make_api_key, acme_caller, path, field
):
    """AC-2: members, custom roles, keys and audit events of Globex never appear to Acme."""
    globex = tenants["globex"]
    for tenant in tenants.values():
        make_api_key(tenant, [])
    url = f"{SETTINGS}{path}?limit=100"
    theirs = _own_ids(client.get(url, headers=globex["owner"].headers), field)

    mine = _own_ids(client.get(url, headers=acme_caller), field)

    assert theirs, "Globex has something of this kind, so the check below can fail"
    assert mine, "Acme has its own, so an empty list would be a bug too"
    assert not mine & theirs


def test_members_list_shows_exactly_the_callers_organization(client, tenants):
    """AC-2: Acme's four accounts, and no one from Globex or the default organization."""
    acme = tenants["acme"]

    response = client.get(f"{SETTINGS}/members?limit=100", headers=acme["admin"].headers)

    assert response.status_code == 200
    assert {m["id"] for m in response.json["members"]} == {acme[role].id for role in ROLES}


# AU-1: a 403 is a security event


def test_a_403_records_access_denied_in_the_callers_organization(client, tenants):
    """AU-1, AC-1: the denial is in the caller's audit trail, with what was attempted."""
    acme, globex = tenants["acme"], tenants["globex"]
    member = acme["member"]

    denied = client.patch(
        f"{SETTINGS}/organization", json={"name": "Mine now"}, headers=member.headers
    )

    assert denied.status_code == 403
    events = client.get(f"{SETTINGS}/audit-events", headers=acme["owner"].headers)
    newest = events.json["audit_events"][0]
    assert newest["event"] == "access.denied"
    assert newest["actor"] == f"user:{member.id}"
    assert newest["user_id"] == member.id
    assert newest["data"] == {
        "permission": "org:manage",
        "method": "PATCH",
        "path": f"{SETTINGS}/organization",
    }
    theirs = client.get(f"{SETTINGS}/audit-events", headers=globex["owner"].headers)
    assert "access.denied" not in {e["event"] for e in theirs.json["audit_events"]}
    organization = client.get(f"{SETTINGS}/organization", headers=member.headers)
    assert organization.json["name"] == "Acme"


# Statement budget


@pytest.mark.parametrize("path", [f"{SETTINGS}/organization", "/api/v1/auth/me"])
def test_a_bearer_request_costs_at_most_two_statements(client, tenants, count_sql, path):
    """The principal load and the testing clock read; the route adds nothing."""
    headers = tenants["acme"]["member"].headers

    with count_sql() as statements:
        response = client.get(path, headers=headers)

    assert response.status_code == 200, response.json
    assert len(statements) <= 2, "\n".join(statements)


def test_an_api_key_costs_three_statements_at_first_use_then_two(
    client, tenants, make_api_key, count_sql
):
    """The key, the clock and, at most once a minute, the last_used_at write."""
    acme = tenants["acme"]
    created = make_api_key(acme, [])
    url = f"{SETTINGS}/organization"

    with count_sql() as first:
        first_response = client.get(url, headers=key_header(created["key"]))
    with count_sql() as second:
        second_response = client.get(url, headers=key_header(created["key"]))

    assert (first_response.status_code, second_response.status_code) == (200, 200)
    assert first_response.json["id"] == acme.id
    assert len(first) <= 3, "\n".join(first)
    assert len(second) <= 2, "\n".join(second)
    keys = client.get(f"{SETTINGS}/api-keys", headers=acme["owner"].headers).json["api_keys"]
    assert next(k for k in keys if k["id"] == created["id"])["last_used_at"] is not None
