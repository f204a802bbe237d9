"""Inviting into an organization (docs/api.md "Invitations"): the invitation, its mail, renewal,
who may invite with which roles (AC-1, AC-3), the pending list and revoking (AC-2)."""

from __future__ import annotations

import threading

import pytest

from tests.app.settings.conftest import SETTINGS
from tests.app.settings.invitations import (
    ACCEPT,
    INVITATIONS,
    SUBJECT,
    audit_events,
    invitation_rows,
    invite,
    invited,
    logged_in_again,
    mailed_token,
    pending,
    sign_up_through,
)
from tests.app.web.conftest import set_clock


def test_an_invitation_is_201_without_its_token_and_the_link_is_mailed(
    app, client, tenants, mailbox
):
    owner = tenants["acme"]["owner"]

    response = invite(client, owner, " New.Person@Example.com ", ["admin"])

    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) == {"id", "email", "roles", "invited_by", "created_at", "expires_at"}
    assert body["email"] == "New.Person@Example.com"
    assert body["roles"] == ["admin"]
    assert body["invited_by"] == owner.id
    message = mailbox.last(to="new.person@example.com", subject=SUBJECT)
    [link] = [x for x in mailbox.links(message) if "/invitations/accept?token=" in x]
    assert link.startswith(app.config["PUBLIC_BASE_URL"].rstrip("/") + "/invitations/accept?")
    assert "Acme" in mailbox.text(message)
    [row] = invitation_rows(app, "new.person@example.com")
    assert mailed_token(mailbox, "new.person@example.com") not in str(body)
    assert row.token_hash not in str(body)


def test_roles_default_to_member(client, tenants):
    response = invite(client, tenants["acme"]["admin"], "someone@example.com")

    assert response.status_code == 201, response.json
    assert response.json["roles"] == ["member"]


def test_inviting_again_renews_the_pending_invitation_and_the_old_link_dies(
    app, client, tenants, mailbox
):
    owner = tenants["acme"]["owner"]
    first = invite(client, owner, "bo@example.com", ["member"])
    old_token = mailed_token(mailbox, "bo@example.com")

    again = invite(client, owner, "BO@example.com", ["admin"])
    new_token = mailed_token(mailbox, "bo@example.com")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]
    assert again.json["roles"] == ["admin"]
    assert len(invitation_rows(app, "bo@example.com")) == 1
    assert [row["roles"] for row in pending(client, owner)] == [["admin"]]
    assert sign_up_through(client, old_token).json["error"]["code"] == "invalid_token"
    assert sign_up_through(client, new_token).status_code == 201


def test_inviting_a_member_is_409_already_member(client, tenants):
    response = invite(client, tenants["acme"]["owner"], "MEMBER@acme.example")

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "already_member"


def test_a_member_of_another_organization_may_be_invited(client, tenants):
    assert invite(client, tenants["acme"]["owner"], "member@globex.example").status_code == 201


def test_roles_carrying_permissions_the_inviter_lacks_are_403(client, tenants, join):
    acme = tenants["acme"]
    made = client.post(
        f"{SETTINGS}/roles",
        json={"name": "recruiter", "permissions": ["users:manage", "users:read"]},
        headers=acme["owner"].headers,
    )
    assert made.status_code == 201, made.json
    recruiter = join(acme, "recruiter@acme.example", "recruiter")

    for roles in (["admin"], ["auditor"], ["member", "admin"]):
        refused = invite(client, recruiter, "x@example.com", roles)
        assert refused.status_code == 403, (roles, refused.json)
    assert invite(client, recruiter, "x@example.com", ["recruiter"]).status_code == 201
    assert audit_events(client, acme, "access.denied")[0]["data"]["action"] == "member.invite"


def test_only_an_owner_invites_with_the_owner_role(client, tenants):
    acme = tenants["acme"]

    by_admin = invite(client, acme["admin"], "boss@example.com", ["owner"])
    by_owner = invite(client, acme["owner"], "boss@example.com", ["owner"])

    assert by_admin.status_code == 403, by_admin.json
    assert by_owner.status_code == 201, by_owner.json


def test_unknown_role_is_422_and_another_organizations_role_is_unknown(client, tenants):
    globex = tenants["globex"]
    made = client.post(
        f"{SETTINGS}/roles",
        json={"name": "acmeonly", "permissions": []},
        headers=tenants["acme"]["owner"].headers,
    )
    assert made.status_code == 201, made.json

    for roles in (["nope"], ["acmeonly"], []):
        response = invite(client, globex["owner"], "x@example.com", roles)
        assert response.status_code == 422, (roles, response.json)
        assert "roles" in response.json["error"]["fields"]


def test_inviting_needs_users_manage_and_listing_users_read(client, tenants):
    acme = tenants["acme"]

    assert invite(client, acme["member"], "x@example.com").status_code == 403
    assert invite(client, acme["auditor"], "x@example.com").status_code == 403
    assert client.get(INVITATIONS, headers=acme["member"].headers).status_code == 403
    assert client.get(INVITATIONS, headers=acme["auditor"].headers).status_code == 200
    assert client.get(INVITATIONS).status_code == 401


def test_the_list_holds_the_callers_pending_invitations_newest_first(client, tenants, mailbox):
    acme, globex = tenants["acme"], tenants["globex"]
    invite(client, acme["owner"], "a@example.com")
    invite(client, acme["owner"], "b@example.com")
    gone = invite(client, acme["owner"], "c@example.com").json["id"]
    invite(client, globex["owner"], "g@example.com")
    used = invited(client, mailbox, acme["owner"], "d@example.com")
    assert sign_up_through(client, used).status_code == 201

    assert client.delete(f"{INVITATIONS}/{gone}", headers=acme["owner"].headers).status_code == 204

    assert [row["email"] for row in pending(client, acme["owner"])] == [
        "b@example.com",
        "a@example.com",
    ]
    assert [row["email"] for row in pending(client, globex["owner"])] == ["g@example.com"]


def test_expired_invitations_leave_the_list(client, tenants):
    invite(client, tenants["acme"]["owner"], "late@example.com")

    set_clock(client, 7 * 86400 + 60)

    assert pending(client, logged_in_again(client, tenants["acme"]["owner"])) == []


def test_revoking_kills_the_link_and_is_audited(client, tenants, mailbox):
    acme = tenants["acme"]
    token = invited(client, mailbox, acme["owner"], "rev@example.com")
    invitation_id = pending(client, acme["owner"])[0]["id"]

    revoked = client.delete(f"{INVITATIONS}/{invitation_id}", headers=acme["admin"].headers)
    again = client.delete(f"{INVITATIONS}/{invitation_id}", headers=acme["admin"].headers)

    assert (revoked.status_code, again.status_code) == (204, 204)
    refused = sign_up_through(client, token)
    assert (refused.status_code, refused.json["error"]["code"]) == (400, "invalid_token")
    [event] = audit_events(client, acme, "invitation.revoked")
    assert event["data"]["invitation_id"] == invitation_id


@pytest.mark.parametrize(
    "invitation_id", ["other", "not-a-uuid", "00000000-0000-0000-0000-000000000000"]
)
def test_revoking_another_organizations_or_no_invitation_is_404(client, tenants, invitation_id):
    acme, globex = tenants["acme"], tenants["globex"]
    theirs = invite(client, globex["owner"], "theirs@example.com").json["id"]
    target = theirs if invitation_id == "other" else invitation_id

    response = client.delete(f"{INVITATIONS}/{target}", headers=acme["owner"].headers)

    assert response.status_code == 404, response.json
    assert [row["id"] for row in pending(client, globex["owner"])] == [theirs]


def test_an_invitation_is_audited_and_names_no_link(client, tenants):
    acme = tenants["acme"]
    invite(client, acme["owner"], "aud@example.com", ["admin"])

    [event] = audit_events(client, acme, "member.invited")

    assert event["data"]["email"] == "aud@example.com"
    assert event["data"]["roles"] == ["admin"]
    assert "token" not in str(event)
    assert ACCEPT not in str(event)


def test_two_inviters_at_once_leave_one_pending_invitation(app, client, tenants):
    acme, answers = tenants["acme"], []
    barrier = threading.Barrier(2)

    def inviter(account) -> None:
        racing = app.test_client()
        barrier.wait()
        answers.append(invite(racing, account, "both@example.com").status_code)

    threads = [threading.Thread(target=inviter, args=(acme[r],)) for r in ("owner", "admin")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [200, 201], answers
    assert len(invitation_rows(app, "both@example.com")) == 1
