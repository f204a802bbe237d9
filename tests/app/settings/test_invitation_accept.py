"""Accepting an invitation (docs/api.md "Invitations"): a logged-in person whose confirmed address
is the invited one joins with the invited roles; a newcomer signs up through the link into that
organization only; every other use of the link is refused (single use, F10)."""

from __future__ import annotations

import threading

from authapp.auth.services.memberships import PERSONAL_ORGANIZATION
from tests.app.settings.invitations import (
    ACCEPT,
    audit_events,
    invitation_rows,
    invited,
    logged_in_again,
    member_roles,
    organizations_of,
    pending,
    sign_up_through,
)
from tests.app.web.conftest import set_clock
from tests.conftest import PASSWORD, auth_header


def accept(client, token: str, access_token: str):
    return client.post(ACCEPT, json={"token": token}, headers=auth_header(access_token))


def test_a_verified_invitee_joins_with_the_invited_roles(
    client, tenants, mailbox, make_user, login
):
    acme = tenants["acme"]
    ada = make_user(email="ada@example.com")
    token = invited(client, mailbox, acme["owner"], "Ada@Example.com", "admin", "auditor")

    response = accept(client, token, login(ada)["access_token"])

    assert response.status_code == 200, response.json
    assert response.json == {
        "organization": {"id": acme.id, "name": "Acme"},
        "roles": ["admin", "auditor"],
    }
    assert member_roles(client, acme, "ada@example.com") == ["admin", "auditor"]
    assert pending(client, acme["owner"]) == []
    [joined] = audit_events(client, acme, "member.joined")
    assert joined["user_id"] == ada["id"]


def test_a_newcomer_signs_up_into_the_inviting_organization_only(app, client, tenants, mailbox):
    acme = tenants["acme"]
    token = invited(client, mailbox, acme["owner"], "New@Example.com", "auditor")

    response = sign_up_through(client, token, full_name="New Person", username="newbie")

    assert response.status_code == 201, response.json
    assert set(response.json) >= {"access_token", "refresh_token", "token_type", "user"}
    user = response.json["user"]
    assert user["email"] == "New@Example.com"
    assert user["email_verified"] is True
    assert user["organization"] == {"id": acme.id, "name": "Acme"}
    assert user["roles"] == ["auditor"]
    assert organizations_of(app, "new@example.com") == [acme.id]
    me = client.get("/api/v1/auth/me", headers=auth_header(response.json["access_token"]))
    assert me.json["user"]["full_name"] == "New Person"
    assert [e["user_id"] for e in audit_events(client, acme, "member.joined")] == [user["id"]]


def test_an_account_for_another_address_is_403_and_the_invitation_waits(
    client, tenants, mailbox, make_user, login
):
    acme = tenants["acme"]
    token = invited(client, mailbox, acme["owner"], "ada@example.com")
    bob = make_user(email="bob@example.com")

    response = accept(client, token, login(bob)["access_token"])

    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "invitation_email_mismatch"
    assert len(pending(client, acme["owner"])) == 1


def test_an_unconfirmed_address_is_403_email_unverified(client, tenants, mailbox):
    acme = tenants["acme"]
    signed_up = client.post(
        "/api/v1/auth/signup", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert signed_up.status_code == 201, signed_up.json
    token = invited(client, mailbox, acme["owner"], "ada@example.com")

    response = accept(client, token, signed_up.json["access_token"])

    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "email_unverified"
    assert member_roles(client, acme, "ada@example.com") is None


def test_a_member_already_is_409_and_the_invitation_waits(
    client, tenants, mailbox, make_user, login
):
    acme = tenants["acme"]
    token = invited(client, mailbox, acme["owner"], "ada@example.com")
    ada = make_user(email="ada@example.com", organization=acme.id)

    response = accept(client, token, login(ada)["access_token"])

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "already_member"
    assert len(pending(client, acme["owner"])) == 1


def test_signing_up_for_an_address_with_an_account_is_409_login_required(
    client, tenants, mailbox, make_user
):
    make_user(email="ada@example.com")
    token = invited(client, mailbox, tenants["acme"]["owner"], "ADA@example.com")

    response = sign_up_through(client, token)

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "login_required"


def test_a_used_or_expired_link_is_400_invalid_token(client, tenants, mailbox):
    owner = tenants["acme"]["owner"]
    used = invited(client, mailbox, owner, "used@example.com")
    late = invited(client, mailbox, owner, "late@example.com")
    assert sign_up_through(client, used).status_code == 201

    reused = sign_up_through(client, used)
    set_clock(client, 7 * 86400 + 60)
    expired = sign_up_through(client, late)

    for response in (reused, expired):
        assert response.status_code == 400, response.json
        assert response.json["error"]["code"] == "invalid_token"
    assert [row["email"] for row in pending(client, logged_in_again(client, owner))] == []


def test_malformed_or_unknown_tokens_are_400_and_no_credentials_401(client):
    for token in ("short", "x" * 43, "é" * 43, "\ud800" * 43, "a" * 256):
        response = sign_up_through(client, token)
        assert response.status_code == 400, (token, response.json)
        assert response.json["error"]["code"] == "invalid_token"

    anonymous = client.post(ACCEPT, json={"token": "x" * 43})

    assert anonymous.status_code == 401, anonymous.json


def test_the_password_policy_applies_and_the_link_stays_usable(client, tenants, mailbox):
    token = invited(client, mailbox, tenants["acme"]["owner"], "pat@example.com")

    weak = sign_up_through(client, token, password="short")

    assert weak.status_code == 422, weak.json
    assert "password" in weak.json["error"]["fields"]
    assert sign_up_through(client, token).status_code == 201


def test_deleted_roles_are_dropped_and_member_remains(client, tenants, mailbox):
    acme = tenants["acme"]
    token = invited(client, mailbox, acme["owner"], "gone@example.com", "auditor")
    deleted = client.delete(
        f"/api/v1/settings/roles/{acme.auditor_role_id}", headers=acme["owner"].headers
    )
    assert deleted.status_code == 204, deleted.json

    response = sign_up_through(client, token)

    assert response.status_code == 201, response.json
    assert response.json["user"]["roles"] == ["member"]


def test_two_concurrent_accepts_have_one_winner(app, client, tenants, mailbox):
    token = invited(client, mailbox, tenants["acme"]["owner"], "race@example.com")
    barrier, answers = threading.Barrier(2), []

    def racer() -> None:
        racing = app.test_client()
        barrier.wait()
        answers.append(sign_up_through(racing, token).status_code)

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) in ([201, 400], [201, 409]), answers
    assert organizations_of(app, "race@example.com") == [tenants["acme"].id]
    [row] = invitation_rows(app, "race@example.com")
    assert row.accepted_at is not None
    assert row.accepted_by is not None


def test_joining_by_invitation_creates_no_personal_organization(app, client, tenants, mailbox):
    token = invited(client, mailbox, tenants["globex"]["owner"], "solo@example.com")

    user = sign_up_through(client, token).json["user"]

    assert user["organization"]["name"] == "Globex" != PERSONAL_ORGANIZATION
    assert organizations_of(app, "solo@example.com") == [tenants["globex"].id]
