"""POST /api/v1/auth/switch-organization: a session moves to another of the person's
organizations; what it sees follows it, and nothing issued before the switch acts any more
(docs/api.md "Organizations")."""

from __future__ import annotations

import jwt
import pytest
import sqlalchemy as sa

from authapp.models import AuditEvent, Membership, RefreshToken
from authapp.platform.extensions import db
from tests.app.settings.organizations import (
    API_KEYS,
    ME,
    ORGANIZATIONS,
    REFRESH,
    add_membership,
    error_code,
    events,
    member_ids,
    switch,
    switched,
)
from tests.conftest import PASSWORD, auth_header


def _jti(token):
    return jwt.decode(token, options={"verify_signature": False})["jti"]


@pytest.fixture
def ada(app, tenants):
    """Acme's admin, also an admin of Globex: two memberships, one session in Acme."""
    account = tenants["acme"]["admin"]
    add_membership(app, account.id, tenants["globex"].id, "admin")
    return account


def test_the_switch_answers_a_pair_for_the_target_with_its_roles(client, tenants, ada):
    globex = tenants["globex"].id
    pair = switched(client, ada.access_token, globex)

    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["org"] == globex
    assert pair["user"]["roles"] == ["admin"]
    assert pair["token_type"] == "Bearer"
    me = client.get(ME, headers=auth_header(pair["access_token"]))
    assert me.json["user"]["organization"]["id"] == globex
    listed = client.get(ORGANIZATIONS, headers=auth_header(pair["access_token"])).json
    current = [org["id"] for org in listed["organizations"] if org["current"]]
    assert current == [globex]


def test_the_access_token_from_before_the_switch_is_revoked_at_once(client, tenants, ada):
    switched(client, ada.access_token, tenants["globex"].id)

    response = client.get(ME, headers=auth_header(ada.access_token))

    assert response.status_code == 401
    assert error_code(response) == "token_revoked"


def test_a_token_sees_only_the_organization_its_session_acts_in(client, tenants, ada):
    acme, globex = tenants["acme"], tenants["globex"]
    assert member_ids(client, ada.access_token) == {a.id for a in acme.accounts.values()}
    acme_events = {event["id"] for event in events(client, ada.access_token)}
    acme_keys = client.get(API_KEYS, headers=auth_header(ada.access_token)).json["api_keys"]
    assert acme_keys == []
    made = client.post(
        API_KEYS, json={"name": "acme", "scopes": ["users:read"]}, headers=ada.headers
    )
    assert made.status_code == 201

    pair = switched(client, ada.access_token, globex.id)

    token = pair["access_token"]
    assert member_ids(client, token) == {a.id for a in globex.accounts.values()} | {ada.id}
    assert acme_events.isdisjoint(event["id"] for event in events(client, token))
    assert client.get(API_KEYS, headers=auth_header(token)).json["api_keys"] == []
    back = switched(client, token, acme.id)["access_token"]
    keys = client.get(API_KEYS, headers=auth_header(back)).json["api_keys"]
    assert [key["id"] for key in keys] == [made.json["id"]]


def test_the_old_refresh_token_within_the_grace_window_gets_the_switch_s_pair(
    app, client, tenants, ada
):
    globex = tenants["globex"].id
    pair = switched(client, ada.access_token, globex)

    retried = client.post(REFRESH, json={"refresh_token": ada.refresh_token})

    assert retried.status_code == 200, retried.json
    assert _jti(retried.json["refresh_token"]) == _jti(pair["refresh_token"])
    assert retried.json["user"]["organization"]["id"] == globex
    with app.app_context():
        old = db.session.get(RefreshToken, _jti(ada.refresh_token))
        assert old.used_at is not None
        assert old.replaced_by == _jti(pair["refresh_token"])


@pytest.mark.config(REFRESH_REUSE_GRACE_SECONDS=0)
def test_the_old_refresh_token_after_the_window_revokes_the_session(client, tenants, ada):
    pair = switched(client, ada.access_token, tenants["globex"].id)

    reused = client.post(REFRESH, json={"refresh_token": ada.refresh_token})

    assert reused.status_code == 401
    assert error_code(reused) == "token_reused"
    after = client.get(ME, headers=auth_header(pair["access_token"]))
    assert after.status_code == 401  # RT-2: the whole session ends


@pytest.mark.parametrize("target", ["globex-of-others", "unknown", "not-a-uuid", "suspended"])
def test_an_organization_the_caller_cannot_act_in_is_404(app, client, tenants, target):
    ada = tenants["acme"]["admin"]
    globex = tenants["globex"].id
    if target == "suspended":
        add_membership(app, ada.id, globex, "admin")
        with app.app_context():
            db.session.execute(
                sa.update(Membership)
                .where(Membership.user_id == ada.id, Membership.organization_id == globex)
                .values(is_active=False)
            )
            db.session.commit()
    ids = {"unknown": "00000000-0000-4000-8000-000000000000", "not-a-uuid": "acme\x00'; --"}

    response = switch(client, ada.access_token, ids.get(target, globex))

    assert response.status_code == 404
    assert response.json["error"] == {"code": "not_found", "message": "No such organization."}
    assert client.get(ME, headers=ada.headers).status_code == 200  # nothing moved


@pytest.mark.parametrize("value", [None, 7, "", "x" * 10_000, "\ud800", ["a"], {"a": 1}])
def test_hostile_organization_ids_are_refused_without_a_500(client, tenants, value):
    response = switch(client, tenants["acme"]["admin"].access_token, value)

    assert response.status_code in (404, 422), response.json


def test_an_api_key_cannot_switch(client, tenants, make_api_key):
    key = make_api_key(tenants["acme"], ["users:read"])["key"]

    response = client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": tenants["globex"].id},
        headers={"X-API-Key": key},
    )

    assert response.status_code == 403


def test_the_next_login_lands_where_the_person_switched_to(client, tenants, ada):
    switched(client, ada.access_token, tenants["globex"].id)

    login = client.post("/api/v1/auth/login", json={"login": ada.email, "password": PASSWORD})

    assert login.json["user"]["organization"]["id"] == tenants["globex"].id


def test_the_switch_is_audited_in_both_organizations(app, client, tenants, ada):
    acme, globex = tenants["acme"].id, tenants["globex"].id
    switched(client, ada.access_token, globex)

    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "session.switched_organization")
        ).all()
    by_org = {row.organization_id: row.data for row in rows}
    assert by_org[acme]["from"] == acme
    assert by_org[acme]["to"] == globex
    assert by_org[globex]["to"] == globex


def test_suspending_in_one_organization_leaves_the_other_session_working(client, tenants, ada):
    acme, globex = tenants["acme"], tenants["globex"]
    in_acme = client.post("/api/v1/auth/login", json={"login": ada.email, "password": PASSWORD})
    in_globex = switched(client, in_acme.json["access_token"], globex.id)["access_token"]
    in_acme_again = client.post(
        "/api/v1/auth/login", json={"login": ada.email, "password": PASSWORD}
    ).json
    acme_token = switched(client, in_acme_again["access_token"], acme.id)["access_token"]

    suspended = client.patch(
        f"/api/v1/settings/members/{ada.id}",
        json={"is_active": False},
        headers=acme["owner"].headers,
    )

    assert suspended.status_code == 200, suspended.json
    assert client.get(ME, headers=auth_header(acme_token)).status_code == 401
    assert client.get(ME, headers=auth_header(in_globex)).status_code == 200
    assert switch(client, in_globex, acme.id).status_code == 404
