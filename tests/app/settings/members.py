"""What the member administration tests (test_members_*.py) share."""

from __future__ import annotations

from typing import Any

from tests.app.settings.conftest import SETTINGS, Account, Tenant

MEMBERS = f"{SETTINGS}/members"
ME = "/api/v1/auth/me"


def member(client, headers: dict[str, str], user_id: str) -> dict[str, Any]:
    listed = client.get(MEMBERS, query_string={"limit": 100}, headers=headers).json["members"]
    return next(row for row in listed if row["id"] == user_id)


def patch(client, account: Account, user_id: str, body: Any):
    return client.patch(f"{MEMBERS}/{user_id}", json=body, headers=account.headers)


def member_updates(client, tenant: Tenant) -> list[dict[str, Any]]:
    response = client.get(
        f"{SETTINGS}/audit-events", query_string={"limit": 100}, headers=tenant["owner"].headers
    )
    assert response.status_code == 200, response.json
    return [e for e in response.json["audit_events"] if e["event"] == "member.updated"]


def me(client, account: Account):
    return client.get(ME, headers=account.headers)
