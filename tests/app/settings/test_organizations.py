"""GET and POST /api/v1/organizations, leaving one and handing its ownership over
(docs/api.md "Organizations")."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from authapp.models import AuditEvent, Session
from authapp.platform.extensions import db
from tests.app.settings.organizations import (
    LEAVE,
    ME,
    MEMBERS,
    ORGANIZATIONS,
    TRANSFER,
    add_membership,
    error_code,
    switched,
)
from tests.conftest import PASSWORD, auth_header


def _create(client, headers, name="Initech"):
    return client.post(ORGANIZATIONS, json={"name": name}, headers=headers)


def test_the_list_shows_every_membership_in_join_order_with_the_current_one(app, client, tenants):
    ada = tenants["acme"]["member"]
    add_membership(app, ada.id, tenants["globex"].id, "admin")

    response = client.get(ORGANIZATIONS, headers=ada.headers)

    assert response.status_code == 200
    assert response.json["organizations"] == [
        {"id": tenants["acme"].id, "name": "Acme", "roles": ["member"], "is_active": True,
         "current": True},
        {"id": tenants["globex"].id, "name": "Globex", "roles": ["admin"], "is_active": True,
         "current": False},
    ]  # fmt: skip


def test_creating_one_makes_the_caller_its_owner_without_moving_the_session(client, tenants):
    ada = tenants["acme"]["member"]

    created = _create(client, ada.headers, "  Initech  ")

    assert created.status_code == 201, created.json
    assert created.json["name"] == "Initech"
    assert created.json["roles"] == ["owner"]
    assert client.get(ME, headers=ada.headers).json["user"]["organization"]["name"] == "Acme"
    pair = switched(client, ada.access_token, created.json["id"])
    assert pair["user"]["roles"] == ["owner"]
    assert "org:manage" in pair["user"]["permissions"]


@pytest.mark.config(ORGANIZATIONS_PER_USER=2)
def test_owning_more_than_the_limit_is_409(client, tenants):
    owner = tenants["acme"]["owner"]  # owns Acme already
    assert _create(client, owner.headers, "Second").status_code == 201

    refused = _create(client, owner.headers, "Third")

    assert refused.status_code == 409
    assert error_code(refused) == "organization_limit"
    # Membership without ownership does not count.
    assert _create(client, tenants["acme"]["member"].headers, "Own").status_code == 201


def test_an_unconfirmed_address_cannot_create_one(app, client):
    signed_up = client.post(
        "/api/v1/auth/signup", json={"email": "u@x.example", "password": PASSWORD}
    )
    headers = auth_header(signed_up.json["access_token"])

    refused = _create(client, headers)

    assert refused.status_code == 403
    assert error_code(refused) == "email_not_verified"


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * 101, "a\x00b", "line\nbreak", "\ud800", None, 5, ["x"]]
)
def test_hostile_names_are_422(client, tenants, name):
    refused = client.post(
        ORGANIZATIONS, json={"name": name}, headers=tenants["acme"]["member"].headers
    )

    assert refused.status_code == 422, refused.json


def test_api_keys_cannot_list_or_create(client, tenants, make_api_key):
    key = {"X-API-Key": make_api_key(tenants["acme"], ["org:manage"])["key"]}

    assert client.get(ORGANIZATIONS, headers=key).status_code == 403
    assert _create(client, key).status_code == 403


# Leaving


def test_leaving_moves_the_session_and_ends_the_others_acting_there(app, client, tenants):
    ada = tenants["acme"]["member"]
    acme, globex = tenants["acme"].id, tenants["globex"].id
    add_membership(app, ada.id, globex, "member")
    other = client.post("/api/v1/auth/login", json={"login": ada.email, "password": PASSWORD})

    left = client.post(LEAVE, headers=ada.headers)

    assert left.status_code == 200, left.json
    assert left.json["user"]["organization"]["id"] == globex
    assert client.get(ME, headers=auth_header(left.json["access_token"])).status_code == 200
    assert client.get(ME, headers=auth_header(other.json["access_token"])).status_code == 401
    assert ada.id not in {
        m["id"]
        for m in client.get(MEMBERS, headers=tenants["acme"]["owner"].headers).json["members"]
    }
    with app.app_context():
        row = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "member.removed")
        ).one()
        assert (row.organization_id, row.user_id, row.data["voluntary"]) == (acme, ada.id, True)
        ended = db.session.scalars(
            sa.select(Session).where(Session.user_id == ada.id, Session.revoked_at.is_not(None))
        ).all()
        assert [(s.organization_id, s.revoked_reason) for s in ended] == [(acme, "member_left")]


def test_the_only_organization_cannot_be_left(client, tenants):
    refused = client.post(LEAVE, headers=tenants["acme"]["member"].headers)

    assert refused.status_code == 409
    assert error_code(refused) == "last_organization"
    assert client.get(ME, headers=tenants["acme"]["member"].headers).status_code == 200


def test_the_last_owner_cannot_leave(app, client, tenants):
    owner = tenants["acme"]["owner"]
    add_membership(app, owner.id, tenants["globex"].id)

    refused = client.post(LEAVE, headers=owner.headers)

    assert refused.status_code == 409
    assert error_code(refused) == "last_owner"
    assert client.get(ME, headers=owner.headers).status_code == 200  # the session stayed


# Transfer


def test_the_owner_hands_the_ownership_over_and_stays_an_admin(client, tenants):
    acme = tenants["acme"]
    owner, member = acme["owner"], acme["member"]

    moved = client.post(TRANSFER, json={"user_id": member.id}, headers=owner.headers)

    assert moved.status_code == 204, moved.json
    roles = {
        m["id"]: m["roles"] for m in client.get(MEMBERS, headers=owner.headers).json["members"]
    }
    assert roles[owner.id] == ["admin"]
    assert roles[member.id] == ["member", "owner"]
    again = client.post(TRANSFER, json={"user_id": acme["admin"].id}, headers=owner.headers)
    assert again.status_code == 403  # no longer an owner


@pytest.mark.parametrize("who", ["admin", "member"])
def test_only_an_owner_transfers(client, tenants, who):
    acme = tenants["acme"]

    refused = client.post(TRANSFER, json={"user_id": acme["auditor"].id}, headers=acme[who].headers)

    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("target", "status"),
    [("self", 422), ("globex", 404), ("unknown", 404), ("junk", 404), ("suspended", 409)],
)
def test_transfer_targets_that_cannot_own(client, tenants, target, status):
    acme = tenants["acme"]
    owner = acme["owner"]
    client.patch(f"{MEMBERS}/{acme['member'].id}", json={"is_active": False}, headers=owner.headers)
    ids = {
        "self": owner.id,
        "globex": tenants["globex"]["member"].id,
        "unknown": "00000000-0000-4000-8000-000000000000",
        "junk": "x" * 100,
        "suspended": acme["member"].id,
    }

    refused = client.post(TRANSFER, json={"user_id": ids[target]}, headers=owner.headers)

    assert refused.status_code == status, refused.json
    if status == 409:
        assert error_code(refused) == "member_suspended"


def test_the_caller_s_sessions_keep_working_after_the_transfer(app, client, tenants):
    owner = tenants["acme"]["owner"]
    client.post(TRANSFER, json={"user_id": tenants["acme"]["admin"].id}, headers=owner.headers)

    me = client.get(ME, headers=owner.headers)

    assert me.status_code == 200
    assert me.json["user"]["roles"] == ["admin"]  # read from the rows, never the claim (JW-9)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) > 0


@pytest.mark.parametrize(
    "user_id", ["\ud800", "a\x00b", "\u202e" * 50, "x" * 101, "", None, 7, ["x"], {"a": "b"}]
)
def test_hostile_transfer_targets_are_4xx(client, tenants, user_id):
    refused = client.post(
        TRANSFER, json={"user_id": user_id}, headers=tenants["acme"]["owner"].headers
    )

    assert refused.status_code in (404, 422), refused.json
