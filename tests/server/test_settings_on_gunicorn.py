"""Settings on real gunicorn (2 gthread workers): a change one worker commits, every worker honours.

docs/api.md "Settings endpoints". SE-3 (password change), SE-4 (disabling a member), SE-5 (deleting
a session), AK-2 (key revocation), JW-9 (permissions read from the database on every request). Every
check is ATTEMPTS requests over fresh connections, so both workers answer. Every test signs up its
own organization; members join it through `flask create-user`, run on the server's database.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.server.conftest import (
    Server,
    bearer,
    log_in,
    request_json,
    run_flask,
    sign_up,
    unique,
)

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
SETTINGS = "/api/v1/settings"
ATTEMPTS = 10  # fresh connections per check, so both workers answer
NEW_PASSWORD = "another long passphrase nobody guesses"


@pytest.fixture
def owner(server: Server) -> dict[str, Any]:
    """The sign-up answer of the owner of a new organization."""
    return sign_up(server, confirmed=True, organization_name=unique("Org "))


def add_member(server: Server, owner: dict[str, Any]) -> dict[str, Any]:
    """A `member` of the owner's organization, created by the CLI; its login answer."""
    email = f"{unique('member.')}@example.com"
    organization = owner["user"]["organization"]["id"]
    run_flask(server.env, "create-user", "--organization", organization, "--role", "member",
              "--email", email, "--password", PASSWORD)  # fmt: skip
    member = log_in(server, email)
    assert member["user"]["organization"]["id"] == organization
    return member


def answers(server: Server, method: str, path: str, headers: dict[str, str]) -> list[Any]:
    """(status, error code or None) of ATTEMPTS requests, each over a fresh connection."""
    result = []
    for _ in range(ATTEMPTS):
        status, _, body = request_json(server, method, path, headers=headers)
        error = body.get("error") if isinstance(body, dict) else None
        result.append((status, error["code"] if error else None))
    return result


def every(status: int, code: str | None = None) -> list[Any]:
    return [(status, code)] * ATTEMPTS


def test_disabled_member_is_token_revoked_on_every_worker_and_cannot_refresh(server, owner):
    """SE-4: PATCH is_active false revokes every session of the member at once."""
    member = add_member(server, owner)
    assert answers(server, "GET", ME, bearer(member["access_token"])) == every(200)

    status, _, body = request_json(
        server,
        "PATCH",
        f"{SETTINGS}/members/{member['user']['id']}",
        {"is_active": False},
        bearer(owner["access_token"]),
    )

    assert status == 200, body
    assert body["is_active"] is False
    assert answers(server, "GET", ME, bearer(member["access_token"])) == every(401, "token_revoked")
    status, _, body = request_json(
        server, "POST", REFRESH, {"refresh_token": member["refresh_token"]}
    )
    assert status == 401, body
    assert body["error"]["code"] == "token_revoked"


def test_revoked_api_key_is_token_revoked_on_every_worker(server, owner):
    """AK-2: a key that worked on every worker is 401 token_revoked on the very next request."""
    status, _, created = request_json(
        server,
        "POST",
        f"{SETTINGS}/api-keys",
        {"name": "gunicorn key", "scopes": ["users:read"]},
        bearer(owner["access_token"]),
    )
    assert status == 201, created
    key = {"X-API-Key": created["key"]}
    assert answers(server, "GET", f"{SETTINGS}/members", key) == every(200)

    status, _, body = request_json(
        server,
        "DELETE",
        f"{SETTINGS}/api-keys/{created['id']}",
        headers=bearer(owner["access_token"]),
    )

    assert status == 204, body
    assert answers(server, "GET", f"{SETTINGS}/members", key) == every(401, "token_revoked")


def test_password_change_keeps_this_session_and_revokes_the_other_on_every_worker(server):
    """SE-3, PW-6: the calling session works on; the user's other session is 401."""
    signed_up = sign_up(server)
    other = log_in(server, signed_up["user"]["email"])

    status, _, body = request_json(
        server,
        "POST",
        f"{SETTINGS}/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        bearer(signed_up["access_token"]),
    )

    assert status == 204, body
    assert answers(server, "GET", ME, bearer(signed_up["access_token"])) == every(200)
    assert answers(server, "GET", ME, bearer(other["access_token"])) == every(401, "token_revoked")


def test_custom_role_grants_its_permission_on_every_worker_until_it_is_deleted(server, owner):
    """JW-9: permissions come from the database on each request, not from the access token."""
    member = add_member(server, owner)
    owner_headers, member_headers = bearer(owner["access_token"]), bearer(member["access_token"])
    audit = f"{SETTINGS}/audit-events"
    assert answers(server, "GET", audit, member_headers) == every(403, "forbidden")
    name = unique("auditor-")
    status, _, role = request_json(
        server, "POST", f"{SETTINGS}/roles", {"name": name, "permissions": ["audit:read"]},
        owner_headers,
    )  # fmt: skip
    assert status == 201, role

    status, _, body = request_json(
        server,
        "PATCH",
        f"{SETTINGS}/members/{member['user']['id']}",
        {"roles": ["member", name]},
        owner_headers,
    )

    assert status == 200, body
    assert sorted(body["roles"]) == sorted(["member", name])
    assert answers(server, "GET", audit, member_headers) == every(200)

    status, _, body = request_json(
        server, "DELETE", f"{SETTINGS}/roles/{role['id']}", headers=owner_headers
    )

    assert status == 204, body
    assert answers(server, "GET", audit, member_headers) == every(403, "forbidden")


def test_deleting_another_session_revokes_it_on_every_worker(server):
    """SE-5: DELETE /settings/sessions/<id> ends that session at once; the caller's goes on."""
    signed_up = sign_up(server)
    other = log_in(server, signed_up["user"]["email"])
    caller = bearer(signed_up["access_token"])
    status, _, listed = request_json(server, "GET", f"{SETTINGS}/sessions", headers=caller)
    assert status == 200, listed
    others = [session["id"] for session in listed["sessions"] if not session["current"]]
    assert len(others) == 1, listed

    status, _, body = request_json(
        server, "DELETE", f"{SETTINGS}/sessions/{others[0]}", headers=caller
    )

    assert status == 204, body
    assert answers(server, "GET", ME, bearer(other["access_token"])) == every(401, "token_revoked")
    assert answers(server, "GET", ME, caller) == every(200)
    status, _, body = request_json(
        server, "POST", REFRESH, {"refresh_token": other["refresh_token"]}
    )
    assert status == 401, body
    assert body["error"]["code"] == "token_revoked"
