"""`flask permissions add|list` and `require_permission` guarding an adopter's own blueprint."""

from __future__ import annotations

import pytest
from flask import Blueprint

from authapp.auth.guards import require_permission
from tests.app.settings.conftest import SETTINGS, Account, Tenant, key_header
from tests.conftest import PASSWORD

CODE = "commodities:write"
COMMODITIES = "/api/v1/commodities"
ME = "/api/v1/auth/me"


def add_permission(app, code: str = CODE, description: str = "Write commodities"):
    return app.test_cli_runner().invoke(args=["permissions", "add", code, description])


def listed_codes(app) -> list[str]:
    result = app.test_cli_runner().invoke(args=["permissions", "list"])
    assert result.exit_code == 0, result.output
    return [line.split("\t")[0] for line in result.output.splitlines()]


def permissions_of(client, account: Account) -> list[str]:
    response = client.get(ME, headers=account.headers)
    assert response.status_code == 200, response.json
    return response.json["user"]["permissions"]


def grant_custom_role(client, tenant: Tenant, permissions: list[str]) -> None:
    """The owner creates `stock-clerk` and gives it to the tenant's member."""
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "stock-clerk", "permissions": permissions},
        headers=tenant["owner"].headers,
    )
    assert role.status_code == 201, role.json
    granted = client.patch(
        f"{SETTINGS}/members/{tenant['member'].id}",
        json={"roles": ["member", "stock-clerk"]},
        headers=tenant["owner"].headers,
    )
    assert granted.status_code == 200, granted.json


def test_added_permission_is_listed_and_owner_and_admin_hold_it_at_once(app, client, tenants):
    acme = tenants["acme"]
    owner, admin = acme["owner"], acme["admin"]
    assert CODE not in permissions_of(client, owner)

    result = add_permission(app)

    assert result.exit_code == 0, result.output
    assert f"created permission {CODE}" in result.output
    listed = client.get(f"{SETTINGS}/permissions", headers=owner.headers)
    assert {"code": CODE, "description": "Write commodities"} in listed.json["permissions"]
    assert CODE in permissions_of(client, owner)  # tokens issued before the command
    assert CODE in permissions_of(client, admin)
    assert CODE not in permissions_of(client, acme["member"])


def test_a_custom_role_may_include_the_added_code_and_its_holder_gets_it(app, client, tenants):
    acme = tenants["acme"]
    assert add_permission(app).exit_code == 0

    grant_custom_role(client, acme, [CODE])

    assert permissions_of(client, acme["member"]) == [CODE]


def test_adding_again_says_it_already_exists_and_updates_the_description(app, client, tenants):
    assert add_permission(app).exit_code == 0

    again = add_permission(app, description="Create and change commodities")

    assert again.exit_code == 0, again.output
    assert "already exists" in again.output
    listed = client.get(f"{SETTINGS}/permissions", headers=tenants["acme"]["owner"].headers).json[
        "permissions"
    ]
    assert [p for p in listed if p["code"] == CODE] == [
        {"code": CODE, "description": "Create and change commodities"}
    ]


@pytest.mark.parametrize(
    "code", ["Bad Code", "nocolon", "", "a:" + "b" * 99, "Commodities:write", "commodities:", ":x"]
)
def test_an_invalid_code_fails_and_creates_nothing(app, code):
    before = listed_codes(app)

    result = add_permission(app, code=code)

    assert result.exit_code != 0
    assert "code" in result.output
    assert listed_codes(app) == before


def test_a_code_of_exactly_100_characters_is_accepted(app):
    code = "a:" + "b" * 98

    result = add_permission(app, code=code)

    assert result.exit_code == 0, result.output
    assert code in listed_codes(app)


def test_permissions_list_prints_every_code_with_its_description(app):
    assert add_permission(app).exit_code == 0

    result = app.test_cli_runner().invoke(args=["permissions", "list"])

    assert result.exit_code == 0
    assert f"{CODE}\tWrite commodities" in result.output.splitlines()
    for code in ("users:read", "users:manage", "roles:manage", "org:manage", "audit:read"):
        assert code in listed_codes(app)


# The adopter's own blueprint, guarded by the same decorator as authapp's routes.


@pytest.fixture
def adopter(app, request) -> dict[str, Tenant]:
    """The `app` fixture plus an adopter's blueprint (registered before any request), the
    `commodities:write` code, and then the two tenants."""
    commodities = Blueprint("commodities", __name__)

    @commodities.route(COMMODITIES, methods=["POST"])
    @require_permission(CODE)
    def create_commodity() -> dict[str, str]:
        return {"status": "created"}

    app.register_blueprint(commodities)
    assert add_permission(app).exit_code == 0
    return request.getfixturevalue("tenants")


def test_a_member_without_the_code_is_403_and_audited(client, adopter):
    """AC-1, AU-1."""
    acme = adopter["acme"]

    response = client.post(COMMODITIES, json={}, headers=acme["member"].headers)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    events = client.get(
        f"{SETTINGS}/audit-events", query_string={"limit": 100}, headers=acme["owner"].headers
    ).json["audit_events"]
    denied = [e for e in events if e["event"] == "access.denied"]
    assert denied[0]["data"] == {"permission": CODE, "method": "POST", "path": COMMODITIES}
    assert denied[0]["user_id"] == acme["member"].id


def test_a_member_given_a_custom_role_with_the_code_is_let_through(client, adopter):
    acme = adopter["acme"]

    grant_custom_role(client, acme, [CODE])
    response = client.post(COMMODITIES, json={}, headers=acme["member"].headers)

    assert response.status_code == 200, response.json
    assert response.json == {"status": "created"}


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_hold_the_code(client, adopter, role):
    response = client.post(COMMODITIES, json={}, headers=adopter["acme"][role].headers)

    assert response.status_code == 200


def test_no_credentials_is_401(client, adopter):
    response = client.post(COMMODITIES, json={})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_api_key_acts_with_exactly_its_scopes(client, adopter, make_api_key):
    """AK-3."""
    acme = adopter["acme"]
    writer = make_api_key(acme, [CODE])["key"]
    reader = make_api_key(acme, ["users:read"])["key"]

    allowed = client.post(COMMODITIES, json={}, headers=key_header(writer))
    refused = client.post(COMMODITIES, json={}, headers=key_header(reader))

    assert allowed.status_code == 200, allowed.json
    assert refused.status_code == 403


def test_a_disabled_holder_is_401_not_403(client, adopter):
    """SE-4 holds for the adopter's routes too: the revoked session is refused first."""
    acme = adopter["acme"]
    admin = acme["admin"]
    disabled = client.patch(
        f"{SETTINGS}/members/{admin.id}", json={"is_active": False}, headers=acme["owner"].headers
    )
    assert disabled.status_code == 200

    response = client.post(COMMODITIES, json={}, headers=admin.headers)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_revoked"
    relogin = client.post("/api/v1/auth/login", json={"login": admin.email, "password": PASSWORD})
    assert relogin.status_code == 403


@pytest.mark.parametrize(("tier", "limit"), [("pro", 1_000), ("enterprise", 10_000), ("free", 100)])
def test_an_operator_sets_an_organizations_tier_and_its_key_rate_limit(
    app, client, tenants, tier, limit
):
    """`flask org set-tier ORG TIER`: GET /settings/organization shows the tier and limit."""
    acme = tenants["acme"]

    result = app.test_cli_runner().invoke(args=["org", "set-tier", acme.name, tier])

    assert result.exit_code == 0, result.output
    shown = client.get("/api/v1/settings/organization", headers=acme["member"].headers).json
    assert (shown["tier"], shown["rate_limit_per_minute"]) == (tier, limit)
    other = client.get("/api/v1/settings/organization", headers=tenants["globex"]["member"].headers)
    assert other.json["tier"] == "free"


@pytest.mark.parametrize("args", [["Acme", "platinum"], ["No Such Org", "pro"]])
def test_set_tier_refuses_an_unknown_tier_or_organization(app, client, tenants, args):
    result = app.test_cli_runner().invoke(args=["org", "set-tier", *args])

    assert result.exit_code != 0
    shown = client.get(
        "/api/v1/settings/organization", headers=tenants["acme"]["member"].headers
    ).json
    assert shown["tier"] == "free"
