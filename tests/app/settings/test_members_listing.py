"""GET and PATCH /settings/members: keyset paging, role and is_active changes, AC-3, SE-4.

This part: listing members, changing their roles, disabling them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from authapp.models import Membership
from authapp.platform.extensions import db
from tests.app.settings.conftest import SETTINGS
from tests.app.settings.members import ME, MEMBERS, me, member, member_updates, patch
from tests.conftest import PASSWORD, auth_header

MEMBER_FIELDS = {
    "id", "email", "username", "full_name", "roles", "is_active", "email_verified",
    "mfa_enabled", "created_at", "last_login_at",
}  # fmt: skip


def walk(client, headers: dict[str, str], limit: int, between: Callable[[], Any] = lambda: None):
    """Every member id, page after page; `between` runs before each next page is fetched."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = client.get(MEMBERS, query_string=query, headers=headers)
        assert response.status_code == 200, response.json
        assert len(response.json["members"]) <= limit
        seen += [member["id"] for member in response.json["members"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return seen
        between()


def ids_oldest_first(app, organization_id: str) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Membership.user_id)
                .where(Membership.organization_id == organization_id)
                .order_by(Membership.created_at, Membership.id)
            )
        )


# Listing


def test_a_page_holds_at_most_limit_members_and_a_cursor_to_the_rest(client, tenants):
    acme = tenants["acme"]

    first = client.get(MEMBERS, query_string={"limit": 3}, headers=acme["auditor"].headers)
    rest = client.get(
        MEMBERS,
        query_string={"limit": 3, "cursor": first.json["next_cursor"]},
        headers=acme["auditor"].headers,
    )

    assert first.status_code == 200
    assert len(first.json["members"]) == 3
    assert isinstance(first.json["next_cursor"], str)
    assert set(first.json["members"][0]) == MEMBER_FIELDS
    assert rest.status_code == 200
    assert len(rest.json["members"]) == 1
    assert rest.json["next_cursor"] is None
    emails = {m["email"] for m in first.json["members"] + rest.json["members"]}
    assert emails == {f"{role}@acme.example" for role in ("owner", "admin", "member", "auditor")}


def test_walking_every_page_yields_each_member_once_oldest_first(app, client, tenants, join):
    acme = tenants["acme"]
    for number in range(5):
        join(acme, f"extra{number}@acme.example")

    seen = walk(client, acme["owner"].headers, limit=2)

    assert len(seen) == 9
    assert seen == ids_oldest_first(app, acme.id)
    assert not set(seen) & set(ids_oldest_first(app, tenants["globex"].id))


def test_members_added_between_pages_never_cause_a_duplicate_or_a_skip(app, client, tenants, join):
    acme = tenants["acme"]
    for number in range(3):
        join(acme, f"early{number}@acme.example")
    before = ids_oldest_first(app, acme.id)
    added: list[str] = []

    seen = walk(
        client,
        acme["owner"].headers,
        limit=2,
        between=lambda: added.append(join(acme, f"late{len(added)}@acme.example").id),
    )

    assert len(seen) == len(set(seen)), "a member came twice"
    assert seen[: len(before)] == before  # newer members sort after every earlier one
    assert set(seen[len(before) :]) == set(added)
    assert len(added) >= 3


# Roles


def test_owner_sets_roles_by_name_a_custom_role_included(client, tenants):
    acme = tenants["acme"]
    target = acme["member"]

    response = patch(client, acme["owner"], target.id, {"roles": ["admin", "auditor"]})

    assert response.status_code == 200, response.json
    assert set(response.json) == MEMBER_FIELDS
    assert response.json["roles"] == ["admin", "auditor"]
    assert me(client, target).json["user"]["roles"] == ["admin", "auditor"]  # same token
    [event] = member_updates(client, acme)
    assert event["actor"] == f"user:{acme['owner'].id}"
    assert event["user_id"] == target.id
    assert event["data"] == {"roles": {"from": ["member"], "to": ["admin", "auditor"]}}


def test_an_unknown_role_is_422_and_changes_nothing(client, tenants):
    acme = tenants["acme"]

    response = patch(client, acme["owner"], acme["member"].id, {"roles": ["admin", "king"]})

    assert response.status_code == 422
    assert "roles" in response.json["error"]["fields"]
    assert me(client, acme["member"]).json["user"]["roles"] == ["member"]
    assert member_updates(client, acme) == []


def test_another_organizations_custom_role_is_unknown(client, tenants):
    """AC-2: Globex's `auditor` is not a role Acme can hand out by id or name confusion."""
    acme = tenants["acme"]
    client.post(
        f"{SETTINGS}/roles",
        json={"name": "globex-only", "permissions": []},
        headers=tenants["globex"]["owner"].headers,
    )

    response = patch(client, acme["owner"], acme["member"].id, {"roles": ["globex-only"]})

    assert response.status_code == 422
    assert "roles" in response.json["error"]["fields"]


@pytest.mark.parametrize("value", ["false", 0, 1, "true", None, "no"])
def test_is_active_must_be_a_json_boolean(client, tenants, value):
    """AC-4."""
    acme = tenants["acme"]

    response = patch(client, acme["owner"], acme["member"].id, {"is_active": value})

    assert response.status_code == 422
    assert "is_active" in response.json["error"]["fields"]
    assert me(client, acme["member"]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"email": "evil@acme.example"}, {"roles": ["admin"], "is_admin": True}, {"id": "x"}],
)
def test_an_empty_body_or_an_unknown_field_is_422_and_changes_nothing(client, tenants, body):
    """AC-4."""
    acme = tenants["acme"]

    response = patch(client, acme["owner"], acme["member"].id, body)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert me(client, acme["member"]).json["user"]["roles"] == ["member"]
    assert (
        member(client, acme["owner"].headers, acme["member"].id)["email"] == "member@acme.example"
    )


# Disabling


def test_disabling_a_member_revokes_every_session_at_once(client, tenants, login):
    """SE-4."""
    acme = tenants["acme"]
    target = acme["member"]
    second = login({"email": target.email, "password": PASSWORD})

    response = patch(client, acme["owner"], target.id, {"is_active": False})

    assert response.status_code == 200, response.json
    assert response.json["is_active"] is False
    for access in (target.access_token, second["access_token"]):
        answer = client.get(ME, headers=auth_header(access))
        assert answer.status_code == 401
        assert answer.json["error"]["code"] == "token_revoked"
    for refresh in (target.refresh_token, second["refresh_token"]):
        assert (
            client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
        )
    right = client.post("/api/v1/auth/login", json={"login": target.email, "password": PASSWORD})
    assert right.status_code == 403
    assert right.json["error"]["code"] == "account_disabled"
    wrong = client.post("/api/v1/auth/login", json={"login": target.email, "password": "x" * 20})
    assert wrong.status_code == 401
    assert wrong.json["error"]["code"] == "invalid_credentials"
    [event] = member_updates(client, acme)
    assert event["data"] == {"is_active": False, "sessions_revoked": 2}


def test_re_enabling_allows_login_again_but_not_the_old_sessions(client, tenants):
    acme = tenants["acme"]
    target = acme["member"]
    assert patch(client, acme["owner"], target.id, {"is_active": False}).status_code == 200

    response = patch(client, acme["owner"], target.id, {"is_active": True})

    assert response.status_code == 200
    assert response.json["is_active"] is True
    login = client.post("/api/v1/auth/login", json={"login": target.email, "password": PASSWORD})
    assert login.status_code == 200
    assert me(client, target).status_code == 401
    assert [e["data"] for e in member_updates(client, acme)][0] == {"is_active": True}
