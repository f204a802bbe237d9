"""DELETE /api/v1/settings/organization: an owner deletes the organization with the password
again; what lived only there goes, the people and their other organizations stay
(docs/api.md "Organizations")."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from authapp.models import (
    ApiKey,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    Role,
    Session,
    User,
    membership_roles,
)
from authapp.platform import clock
from authapp.platform.extensions import db
from tests.app.settings.organizations import (
    ME,
    ORGANIZATION,
    add_membership,
    error_code,
    member_ids,
)
from tests.conftest import PASSWORD, auth_header


def _delete(client, headers, password=PASSWORD):
    return client.delete(ORGANIZATION, json={"password": password}, headers=headers)


def _invite(app, organization_id):
    with app.app_context():
        db.session.add(
            Invitation(
                organization_id=organization_id,
                email="new@x.example",
                email_normalized="new@x.example",
                token_hash="0" * 64,
                expires_at=clock.now(),
            )
        )
        db.session.commit()


def _count(model, *criteria):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*criteria))


def test_deleting_removes_what_lived_only_there(app, client, tenants, make_api_key):
    acme, globex = tenants["acme"], tenants["globex"]
    make_api_key(acme, ["users:read"])
    _invite(app, acme.id)
    add_membership(app, acme["member"].id, globex.id)

    deleted = _delete(client, acme["owner"].headers)

    assert deleted.status_code == 204, deleted.json
    with app.app_context():
        assert db.session.get(Organization, acme.id) is None
        for model in (Membership, Role, ApiKey, Invitation, Session):
            assert _count(model, model.organization_id == acme.id) == 0, model
        assert _count(User, User.organization_id == acme.id) == 0
        orphans = sa.select(membership_roles.c.membership_id).where(
            membership_roles.c.membership_id.not_in(sa.select(Membership.id))
        )
        assert db.session.execute(orphans).all() == []
        row = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "organization.deleted")
        ).one()
        assert row.organization_id == acme.id
        assert _count(User, User.email.like("%@acme.example")) == 4  # the people stay
    for role in acme.accounts:
        assert client.get(ME, headers=acme[role].headers).status_code == 401


def test_members_other_organizations_are_intact_and_logins_land_there(app, client, tenants):
    acme, globex = tenants["acme"], tenants["globex"]
    add_membership(app, acme["member"].id, globex.id, "admin")

    assert _delete(client, acme["owner"].headers).status_code == 204

    assert acme["member"].id in member_ids(client, globex["owner"].access_token)
    assert client.get(ME, headers=globex["member"].headers).status_code == 200
    login = client.post(
        "/api/v1/auth/login", json={"login": acme["member"].email, "password": PASSWORD}
    )
    assert login.json["user"]["organization"]["id"] == globex.id
    assert login.json["user"]["roles"] == ["admin"]
    alone = client.post(
        "/api/v1/auth/login", json={"login": acme["admin"].email, "password": PASSWORD}
    )
    assert alone.json["user"]["organization"]["name"] == "Personal"


def test_a_wrong_password_is_422_and_nothing_goes(app, client, tenants):
    acme = tenants["acme"]

    refused = _delete(client, acme["owner"].headers, "wrong password, really")

    assert refused.status_code == 422
    assert "password" in refused.json["error"]["fields"]
    assert client.get(ME, headers=acme["member"].headers).status_code == 200
    with app.app_context():
        assert _count(AuditEvent, AuditEvent.event == "organization.delete_failed") == 1


@pytest.mark.parametrize("who", ["admin", "member"])
def test_only_an_owner_deletes(client, tenants, who):
    refused = _delete(client, tenants["acme"][who].headers)

    assert refused.status_code == 403
    assert client.get(ME, headers=tenants["acme"]["owner"].headers).status_code == 200


def test_the_default_organization_cannot_be_deleted(app, client, make_user, login):
    with app.app_context():
        default = db.session.scalars(sa.select(Organization).where(Organization.is_default)).one()
    admin = make_user(email="boss@x.example", organization=default.id, role_names=("owner",))
    token = login(admin)["access_token"]

    refused = _delete(client, auth_header(token), admin["password"])

    assert refused.status_code == 409
    assert error_code(refused) == "default_organization"


@pytest.mark.parametrize("body", [{}, {"password": None}, {"password": 5}, {"extra": "x"}])
def test_bad_bodies_are_422(client, tenants, body):
    refused = client.delete(ORGANIZATION, json=body, headers=tenants["acme"]["owner"].headers)

    assert refused.status_code == 422


def test_an_owner_can_delete_their_account_once_the_organization_is_gone(app, client, tenants):
    owner = tenants["acme"]["owner"]
    account = "/api/v1/settings/account"
    blocked = client.delete(account, json={"password": PASSWORD}, headers=owner.headers)
    assert error_code(blocked) == "owner_must_transfer"
    assert _delete(client, owner.headers).status_code == 204
    login = client.post("/api/v1/auth/login", json={"login": owner.email, "password": PASSWORD})
    personal = login.json["user"]["organization"]["id"]  # landing() gave them one of their own

    deleted = client.delete(
        account, json={"password": PASSWORD}, headers=auth_header(login.json["access_token"])
    )

    assert deleted.status_code == 204, deleted.json  # alone in it: it goes with the account
    with app.app_context():
        assert db.session.get(Organization, personal) is None
        assert _count(User, User.id == owner.id) == 0
        assert _count(Membership, Membership.organization_id == personal) == 0


def test_an_owner_alone_in_an_organization_deletes_the_account_and_it(app, client):
    signed_up = client.post(
        "/api/v1/auth/signup",
        json={"email": "solo@x.example", "password": PASSWORD, "organization_name": "Solo"},
    ).json
    solo = signed_up["user"]["organization"]["id"]

    deleted = client.delete(
        "/api/v1/settings/account",
        json={"password": PASSWORD},
        headers=auth_header(signed_up["access_token"]),
    )

    assert deleted.status_code == 204, deleted.json
    with app.app_context():
        assert db.session.get(Organization, solo) is None
        assert _count(Role, Role.organization_id == solo) == 0
        row = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "organization.deleted")
        ).one()
        assert (row.organization_id, row.actor) == (solo, "user:deleted")
