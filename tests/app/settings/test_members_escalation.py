"""GET and PATCH /settings/members: keyset paging, role and is_active changes, AC-3, SE-4.

This part: no escalation, and the last owner (AC-3).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.app.settings.conftest import SETTINGS, Account, Tenant, wait_for_a_lock_waiter
from tests.app.settings.members import MEMBERS, me, member, member_updates, patch

# AC-3: no escalation


def test_an_admin_cannot_grant_the_owner_role(client, tenants):
    """AC-3."""
    acme = tenants["acme"]

    to_member = patch(client, acme["admin"], acme["member"].id, {"roles": ["owner"]})
    to_self = patch(client, acme["admin"], acme["admin"].id, {"roles": ["admin", "owner"]})

    assert to_member.status_code == 403
    assert to_member.json["error"]["code"] == "forbidden"
    assert to_self.status_code == 403
    assert me(client, acme["member"]).json["user"]["roles"] == ["member"]
    assert me(client, acme["admin"]).json["user"]["roles"] == ["admin"]


def test_an_admin_cannot_change_an_owners_roles_or_disable_them(client, tenants):
    """AC-3."""
    acme = tenants["acme"]
    owner = acme["owner"]

    demote = patch(client, acme["admin"], owner.id, {"roles": ["admin"]})
    add_role = patch(client, acme["admin"], owner.id, {"roles": ["owner", "auditor"]})
    disable = patch(client, acme["admin"], owner.id, {"is_active": False})

    assert [demote.status_code, add_role.status_code, disable.status_code] == [403, 403, 403]
    assert me(client, owner).json["user"]["roles"] == ["owner"]
    assert member_updates(client, acme) == []


def _users_manager(client, tenant: Tenant, join) -> Account:
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "people-manager", "permissions": ["users:manage"]},
        headers=tenant["owner"].headers,
    )
    assert role.status_code == 201, role.json
    return join(tenant, "manager@acme.example", "people-manager")


def test_a_users_manager_cannot_grant_a_role_with_permissions_they_lack(client, tenants, join):
    """AC-3: only `users:manage`; `admin` and `auditor` hold more, `people-manager` does not."""
    acme = tenants["acme"]
    manager = _users_manager(client, acme, join)
    target = acme["member"].id

    admin = patch(client, manager, target, {"roles": ["admin"]})
    auditor = patch(client, manager, target, {"roles": ["member", "auditor"]})
    same_rights = patch(client, manager, target, {"roles": ["people-manager"]})

    assert admin.status_code == 403
    assert auditor.status_code == 403
    assert same_rights.status_code == 200, same_rights.json
    assert same_rights.json["roles"] == ["people-manager"]


def test_a_users_manager_cannot_act_on_a_member_holding_more_rights(client, tenants, join):
    """AC-3: a custom role with `users:manage` neither disables an admin nor strips their roles,
    nor touches the auditor (who holds `audit:read` and `users:read`); a member is in reach."""
    acme = tenants["acme"]
    manager = _users_manager(client, acme, join)

    refused = [
        patch(client, manager, acme["admin"].id, {"is_active": False}),
        patch(client, manager, acme["admin"].id, {"roles": ["member"]}),
        patch(client, manager, acme["admin"].id, {"roles": ["admin", "people-manager"]}),
        patch(client, manager, acme["auditor"].id, {"roles": ["member"]}),
        patch(client, manager, acme["auditor"].id, {"is_active": False}),
    ]
    allowed = patch(client, manager, acme["member"].id, {"is_active": False})

    for response in refused:
        assert response.status_code == 403, response.json
        assert response.json["error"]["code"] == "forbidden"
    assert "permissions you do not have" in refused[0].json["error"]["message"]
    assert me(client, acme["admin"]).json["user"]["roles"] == ["admin"]
    assert me(client, acme["auditor"]).json["user"]["roles"] == ["auditor"]
    assert allowed.status_code == 200, allowed.json
    assert [event["user_id"] for event in member_updates(client, acme)] == [acme["member"].id]


def test_a_users_manager_cannot_raise_their_own_rights(client, tenants, join):
    """AC-3."""
    acme = tenants["acme"]
    manager = _users_manager(client, acme, join)

    for roles in (["people-manager", "admin"], ["people-manager", "auditor"], ["owner"]):
        response = patch(client, manager, manager.id, {"roles": roles})
        assert response.status_code == 403, roles

    user = me(client, manager).json["user"]
    assert user["roles"] == ["people-manager"]
    assert user["permissions"] == ["users:manage"]


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_nobody_can_disable_themselves(client, tenants, role):
    """AC-3."""
    account = tenants["acme"][role]

    response = patch(client, account, account.id, {"is_active": False})

    assert response.status_code == 403
    assert me(client, account).status_code == 200


# AC-3: the last owner


def test_the_last_owner_cannot_drop_the_owner_role(client, tenants):
    """AC-3."""
    acme = tenants["acme"]
    owner = acme["owner"]

    for roles in (["admin"], [], ["member"]):
        response = patch(client, owner, owner.id, {"roles": roles})
        assert response.status_code == 409, roles
        assert response.json["error"]["code"] == "last_owner"

    assert me(client, owner).json["user"]["roles"] == ["owner"]
    assert member_updates(client, acme) == []


def test_the_last_owner_cannot_be_disabled(client, tenants):
    """AC-3: the only owner who could disable an owner is the owner themself, which is 403."""
    acme = tenants["acme"]
    owner = acme["owner"]

    by_self = patch(client, owner, owner.id, {"is_active": False})
    by_admin = patch(client, acme["admin"], owner.id, {"is_active": False})

    assert by_self.status_code in (403, 409)
    assert by_admin.status_code == 403
    assert member(client, acme["admin"].headers, owner.id)["is_active"] is True
    assert me(client, owner).status_code == 200


def test_a_disabled_owner_does_not_count_as_an_owner(client, tenants, join):
    """AC-3: the organization must keep an *active* owner."""
    acme = tenants["acme"]
    owner = acme["owner"]
    other = join(acme, "owner2@acme.example", "owner")
    assert patch(client, owner, other.id, {"is_active": False}).status_code == 200

    response = patch(client, owner, owner.id, {"roles": ["admin"]})

    assert response.status_code == 409
    assert response.json["error"]["code"] == "last_owner"
    assert me(client, owner).json["user"]["roles"] == ["owner"]


def test_of_two_owners_one_demotes_the_other_then_cannot_demote_themself(client, tenants, join):
    """AC-3."""
    acme = tenants["acme"]
    owner = acme["owner"]
    other = join(acme, "owner2@acme.example", "owner")

    demoted = patch(client, owner, other.id, {"roles": ["admin"]})
    self_demoted = patch(client, owner, owner.id, {"roles": ["admin"]})
    back = patch(client, other, other.id, {"roles": ["owner"]})

    assert demoted.status_code == 200, demoted.json
    assert demoted.json["roles"] == ["admin"]
    assert self_demoted.status_code == 409
    assert self_demoted.json["error"]["code"] == "last_owner"
    assert back.status_code == 403
    assert me(client, owner).json["user"]["roles"] == ["owner"]
    assert me(client, other).json["user"]["roles"] == ["admin"]
    [event] = member_updates(client, acme)
    assert event["data"] == {"roles": {"from": ["owner"], "to": ["admin"]}}


def active_owners(client, tenant: Tenant) -> list[str]:
    response = client.get(MEMBERS, query_string={"limit": 100}, headers=tenant["admin"].headers)
    return [m["id"] for m in response.json["members"] if m["is_active"] and "owner" in m["roles"]]


def demote_each_other(app, first: Account, second: Account) -> dict[str, int]:
    """Both PATCHes leave together (two clients, two threads): status by actor id."""
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def demote(actor: Account, target: Account) -> None:
        own_client = app.test_client()
        barrier.wait()
        answer = own_client.patch(
            f"{MEMBERS}/{target.id}", json={"roles": ["admin"]}, headers=actor.headers
        )
        statuses[actor.id] = answer.status_code

    threads = [
        threading.Thread(target=demote, args=(first, second)),
        threading.Thread(target=demote, args=(second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


def test_two_owners_demoting_each_other_at_once_cannot_both_succeed(app, client, tenants, join):
    """AC-3: the organization row is locked, so the second demotion sees the first."""
    acme = tenants["acme"]
    first = acme["owner"]
    second = join(acme, "owner2@acme.example", "owner")
    for _round in range(5):
        statuses = demote_each_other(app, first, second)

        assert sorted(statuses.values()) in ([200, 403], [200, 409]), statuses
        assert len(active_owners(client, acme)) == 1
        winner = next(a for a in (first, second) if statuses[a.id] == 200)
        loser = second if winner is first else first
        promoted = patch(client, winner, loser.id, {"roles": ["owner"]})
        assert promoted.status_code == 200, promoted.json


def test_an_owner_demoted_while_waiting_for_the_lock_cannot_grant_owner(app, tenants, join):
    """AC-3: rights are re-read under the organization's lock, not taken from before it."""
    acme = tenants["acme"]
    second = join(acme, "second.owner@acme.example", "owner")
    with app.app_context():
        engine = db.engine
    answers: list[Any] = []
    request = threading.Thread(
        target=lambda: answers.append(
            app.test_client().patch(
                f"{MEMBERS}/{acme['member'].id}", json={"roles": ["owner"]}, headers=second.headers
            )
        )
    )
    with engine.connect() as holder:
        holder.execute(
            sa.text("SELECT id FROM organizations WHERE id = :id FOR UPDATE"), {"id": acme.id}
        )
        request.start()
        wait_for_a_lock_waiter(engine)
        holder.execute(  # another owner's change, committed while the PATCH waits
            sa.text(
                "UPDATE membership_roles SET role_id = (SELECT id FROM roles"
                " WHERE name = 'admin' AND organization_id IS NULL)"
                " WHERE membership_id = (SELECT id FROM memberships WHERE user_id = :user)"
            ),
            {"user": second.id},
        )
        holder.commit()
    request.join(timeout=10)

    assert answers[0].status_code == 403, answers[0].json
    assert member(app.test_client(), acme["owner"].headers, acme["member"].id)["roles"] == [
        "member"
    ]
