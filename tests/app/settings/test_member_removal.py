"""DELETE /api/v1/settings/members/<id>: a member removed from one organization stops acting
there at once and nowhere else (docs/api.md "Organizations"; AC-2, AC-3)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from authapp.models import AuditEvent, Membership, Session
from authapp.platform.extensions import db
from tests.app.settings.conftest import key_header
from tests.app.settings.organizations import (
    ME,
    MEMBERS,
    add_membership,
    error_code,
    hook,
    member_ids,
    switched,
    webhook_events,
)
from tests.conftest import PASSWORD, auth_header


def _remove(client, headers, user_id):
    return client.delete(f"{MEMBERS}/{user_id}", headers=headers)


def test_a_removed_member_s_sessions_here_end_at_once_and_elsewhere_go_on(app, client, tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    ada = acme["member"]
    add_membership(app, ada.id, globex.id)
    second = client.post("/api/v1/auth/login", json={"login": ada.email, "password": PASSWORD})
    in_globex = switched(client, second.json["access_token"], globex.id)

    removed = _remove(client, acme["owner"].headers, ada.id)

    assert removed.status_code == 204, removed.json
    assert client.get(ME, headers=ada.headers).status_code == 401
    assert client.get(ME, headers=auth_header(in_globex["access_token"])).status_code == 200
    assert ada.id not in member_ids(client, acme["owner"].access_token)
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert refreshed.status_code == 401
    with app.app_context():
        left = db.session.scalars(sa.select(Membership).where(Membership.user_id == ada.id)).all()
        assert [m.organization_id for m in left] == [globex.id]


def test_sessions_ended_by_a_removal_stay_ended_if_the_person_comes_back(app, client, tenants):
    """The membership's absence already stops the tokens; the revocation is what keeps them
    stopped once the person is invited back."""
    acme = tenants["acme"]
    ada = acme["member"]
    assert _remove(client, acme["owner"].headers, ada.id).status_code == 204

    add_membership(app, ada.id, acme.id)

    assert client.get(ME, headers=ada.headers).status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": ada.refresh_token})
    assert refreshed.status_code == 401
    with app.app_context():
        reasons = db.session.scalars(
            sa.select(Session.revoked_reason).where(Session.user_id == ada.id)
        ).all()
        assert reasons == ["member_removed"]


def test_removal_is_audited_and_sent_as_member_removed(app, client, tenants):
    acme = tenants["acme"]
    hook(app, acme.id)

    assert _remove(client, acme["admin"].headers, acme["member"].id).status_code == 204

    assert webhook_events(app, acme.id, "member.removed") == [
        {"user_id": acme["member"].id, "reason": "removed"}
    ]
    with app.app_context():
        row = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "member.removed")
        ).one()
        assert (row.organization_id, row.user_id) == (acme.id, acme["member"].id)
        assert row.actor == f"user:{acme['admin'].id}"


def test_keys_acting_for_a_removed_member_stop(client, tenants):
    acme = tenants["acme"]
    made = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "admin's", "scopes": ["users:read"]},
        headers=acme["admin"].headers,
    )
    key = key_header(made.json["key"])
    assert client.get(MEMBERS, headers=key).status_code == 200

    assert _remove(client, acme["owner"].headers, acme["admin"].id).status_code == 204

    assert client.get(MEMBERS, headers=key).status_code == 401


@pytest.mark.parametrize(("actor", "target"), [("admin", "owner"), ("auditor", "member")])
def test_escalation_rules_apply(client, tenants, actor, target):
    acme = tenants["acme"]

    refused = _remove(client, acme[actor].headers, acme[target].id)

    assert refused.status_code == 403
    assert acme[target].id in member_ids(client, acme["owner"].access_token)


def test_a_users_manage_role_cannot_remove_someone_holding_more(app, client, tenants, join):
    acme = tenants["acme"]
    role = client.post(
        "/api/v1/settings/roles",
        json={"name": "hr", "permissions": ["users:manage", "users:read"]},
        headers=acme["owner"].headers,
    )
    assert role.status_code == 201
    hr = join(acme, "hr@acme.example", "hr")

    assert _remove(client, hr.headers, acme["admin"].id).status_code == 403
    assert _remove(client, hr.headers, acme["member"].id).status_code == 204


def test_an_owner_removes_another_owner(client, tenants):
    acme = tenants["acme"]
    owner = acme["owner"]
    promote = client.patch(
        f"{MEMBERS}/{acme['admin'].id}", json={"roles": ["owner"]}, headers=owner.headers
    )
    assert promote.status_code == 200

    assert _remove(client, owner.headers, acme["admin"].id).status_code == 204


def test_removing_yourself_is_403_leave_instead(client, tenants):
    owner = tenants["acme"]["owner"]

    refused = _remove(client, owner.headers, owner.id)

    assert refused.status_code == 403
    assert "leave" in refused.json["error"]["message"]


@pytest.mark.parametrize(
    "target",
    [
        "globex",
        "unknown",
        "x" * 5000,
        "%00",
        "..%2f",
        "\u202e",
        "00000000-0000-4000-8000-00000000000Z",
    ],
)
def test_another_organization_s_or_unknown_member_is_404(client, tenants, target):
    globex_member = tenants["globex"]["member"].id
    user_id = globex_member if target == "globex" else target
    if target == "unknown":
        user_id = "00000000-0000-4000-8000-000000000000"

    refused = _remove(client, tenants["acme"]["owner"].headers, user_id)

    assert refused.status_code == 404
    assert error_code(refused) == "not_found"
    assert globex_member in member_ids(client, tenants["globex"]["owner"].access_token)


def test_a_key_with_users_manage_removes_a_member_its_creator_could(client, tenants, make_api_key):
    acme = tenants["acme"]
    key = key_header(make_api_key(acme, ["users:manage", "users:read"])["key"])

    assert _remove(client, key, acme["member"].id).status_code == 204
    assert _remove(client, key, acme["owner"].id).status_code == 403  # a key is no owner
