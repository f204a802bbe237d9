"""Organization API keys: AK-1, AK-2, AK-3, CS-2, and scenario F10 (revoke while in use).

This part: a key in use: expiry, revocation, last use, one organization's objects only, unknown and
garbage keys, routes a key may not use.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.app.settings.api_keys import (
    BUILTIN_SCOPES,
    KEY_FORMAT,
    KEYS,
    MEMBERS,
    ORGANIZATION,
    assert_error,
)
from tests.app.settings.conftest import SETTINGS, key_header


def set_clock(client, seconds):
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200


def listed_key(client, tenant, key_id):
    response = client.get(KEYS, headers=tenant["owner"].headers)
    assert response.status_code == 200
    return next(item for item in response.json["api_keys"] if item["id"] == key_id)


def audit_events(client, tenant):
    response = client.get(f"{SETTINGS}/audit-events?limit=100", headers=tenant["owner"].headers)
    assert response.status_code == 200
    assert response.json["next_cursor"] is None  # the whole log is in this page
    return response.json["audit_events"]


def test_a_key_expires_on_time(client, tenants, make_api_key):
    """AK-2: works until `expires_in_days`, then 401 token_expired on the very next request."""
    created = make_api_key(tenants["acme"], [], expires_in_days=1)
    headers = key_header(created["key"])
    assert created["expires_at"] is not None

    set_clock(client, 86400 - 60)
    before = client.get(ORGANIZATION, headers=headers)
    set_clock(client, 86400 + 1)
    after = client.get(ORGANIZATION, headers=headers)

    assert before.status_code == 200
    assert_error(after, 401, "token_expired")
    assert after.headers["WWW-Authenticate"] == "Bearer"


def test_a_revoked_key_fails_on_the_next_request(client, tenants, make_api_key):
    """AK-2; revoking twice is 204 with one audit event."""
    acme = tenants["acme"]
    created = make_api_key(acme, [])
    headers = key_header(created["key"])
    assert client.get(ORGANIZATION, headers=headers).status_code == 200

    first = client.delete(f"{KEYS}/{created['id']}", headers=acme["owner"].headers)
    used = client.get(ORGANIZATION, headers=headers)
    second = client.delete(f"{KEYS}/{created['id']}", headers=acme["owner"].headers)

    assert first.status_code == 204
    assert_error(used, 401, "token_revoked")
    assert second.status_code == 204
    assert listed_key(client, acme, created["id"])["revoked_at"] is not None
    revoked = [
        event
        for event in audit_events(client, acme)
        if event["event"] == "api_key.revoked" and event["data"]["api_key_id"] == created["id"]
    ]
    assert len(revoked) == 1


def test_last_used_at_is_set_on_first_use_then_kept_to_the_minute(client, tenants, make_api_key):
    acme = tenants["acme"]
    created = make_api_key(acme, [])
    headers = key_header(created["key"])
    assert listed_key(client, acme, created["id"])["last_used_at"] is None

    client.get(ORGANIZATION, headers=headers)
    first = listed_key(client, acme, created["id"])["last_used_at"]
    client.get(ORGANIZATION, headers=headers)
    set_clock(client, 30)
    client.get(ORGANIZATION, headers=headers)
    within_a_minute = listed_key(client, acme, created["id"])["last_used_at"]
    set_clock(client, 90)
    client.get(ORGANIZATION, headers=headers)
    later = listed_key(client, acme, created["id"])["last_used_at"]

    assert first is not None
    assert within_a_minute == first
    assert later > first


def test_a_key_never_reaches_another_organizations_objects(client, tenants, make_api_key):
    """AK-3, AC-2: another organization's objects are 404 and stay unchanged."""
    acme, globex = tenants["acme"], tenants["globex"]
    headers = key_header(make_api_key(acme, BUILTIN_SCOPES)["key"])
    theirs = make_api_key(globex, ["users:read"])
    victim = globex["member"]

    organization = client.get(ORGANIZATION, headers=headers)
    member = client.patch(f"{MEMBERS}/{victim.id}", json={"is_active": False}, headers=headers)
    role = client.patch(
        f"{SETTINGS}/roles/{globex.auditor_role_id}", json={"name": "pwned"}, headers=headers
    )
    role_deleted = client.delete(f"{SETTINGS}/roles/{globex.auditor_role_id}", headers=headers)
    key_revoked = client.delete(f"{KEYS}/{theirs['id']}", headers=headers)
    members = client.get(f"{MEMBERS}?limit=100", headers=headers)

    assert organization.json["id"] == acme.id
    for response in (member, role, role_deleted, key_revoked):
        assert_error(response, 404, "not_found")
    assert {m["email"].split("@")[1] for m in members.json["members"]} == {"acme.example"}
    assert client.get("/api/v1/auth/me", headers=victim.headers).status_code == 200
    assert client.get(MEMBERS, headers=key_header(theirs["key"])).status_code == 200
    roles = client.get(f"{SETTINGS}/roles", headers=globex["owner"].headers).json["roles"]
    assert "auditor" in {r["name"] for r in roles}


def test_an_unknown_key_of_the_right_format_is_401_invalid_token(client, tenants, make_api_key):
    real = make_api_key(tenants["acme"], [])["key"]
    unknown = "ak_0123456789ab_" + "A" * 43
    wrong_secret = real[:-43] + ("B" if real[-43] != "B" else "C") + real[-42:]

    for key in (unknown, wrong_secret):
        assert KEY_FORMAT.match(key)
        assert_error(client.get(ORGANIZATION, headers=key_header(key)), 401, "invalid_token")


@pytest.mark.parametrize(
    "value",
    ["", "ak_", "ak_" + "a" * 5000, "ak_0123456789ab_" + "é" * 43, "ключ", "ak_%00_' OR 1=1--"],
)
def test_a_garbage_key_is_401_never_500(client, tenants, value):
    """JW-8 for keys."""
    response = client.get(ORGANIZATION, headers=key_header(value))

    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/me"),
        ("GET", f"{SETTINGS}/profile"),
        ("PATCH", f"{SETTINGS}/profile"),
        ("POST", f"{SETTINGS}/password"),
        ("GET", f"{SETTINGS}/sessions"),
    ],
)
def test_a_key_cannot_use_a_users_own_routes(client, tenants, make_api_key, method, path):
    key = make_api_key(tenants["acme"], BUILTIN_SCOPES)["key"]

    response = client.open(path, method=method, json={"full_name": "Bot"}, headers=key_header(key))

    assert_error(response, 403, "forbidden")


def test_a_key_may_create_a_key_with_a_subset_of_its_scopes(client, tenants, make_api_key):
    """AK-3: the new key is attributed to nobody; the audit log names the acting key."""
    acme = tenants["acme"]
    parent = make_api_key(acme, ["api_keys:manage", "users:read"])
    headers = key_header(parent["key"])

    child = client.post(KEYS, json={"name": "child", "scopes": ["users:read"]}, headers=headers)
    wider = client.post(
        KEYS, json={"name": "wider", "scopes": ["users:read", "audit:read"]}, headers=headers
    )

    assert child.status_code == 201, child.json
    assert child.json["created_by"] is None
    assert child.json["scopes"] == ["users:read"]
    assert client.get(MEMBERS, headers=key_header(child.json["key"])).status_code == 200
    assert_error(wider, 403, "forbidden")
    created = [
        event
        for event in audit_events(client, acme)
        if event["event"] == "api_key.created" and event["data"]["api_key_id"] == child.json["id"]
    ]
    assert len(created) == 1
    assert created[0]["actor"] == f"api_key:{parent['id']}"
    assert created[0]["user_id"] is None
    listed = client.get(KEYS, headers=acme["owner"].headers).json["api_keys"]
    assert sorted(item["name"] for item in listed) == ["child", "test key"]


def test_revoking_a_key_in_use_stops_every_later_request(app, tenants, make_api_key):
    """AK-2, F10: requests hammer a key from several threads while another thread revokes it.
    Every request that starts after the DELETE answered is 401; nothing is a 5xx."""
    acme = tenants["acme"]
    created = make_api_key(acme, ["users:read"])
    results = []  # (started, status, error code)
    lock = threading.Lock()
    warmed = threading.Event()
    revoked_done = []  # monotonic time at which the DELETE had answered

    def hammer():
        own = app.test_client()
        after = 0
        for _ in range(400):  # a bound, should the revoke never happen
            started = time.monotonic()
            response = own.get(MEMBERS, headers=key_header(created["key"]))
            code = response.json["error"]["code"] if response.status_code >= 400 else None
            with lock:
                results.append((started, response.status_code, code))
            if response.status_code == 200:
                warmed.set()
            if revoked_done and started > revoked_done[0]:
                after += 1
                if after >= 10:
                    return

    def revoke():
        own = app.test_client()
        assert warmed.wait(30)
        response = own.delete(f"{KEYS}/{created['id']}", headers=acme["owner"].headers)
        revoked_done.append(time.monotonic())
        assert response.status_code == 204

    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(hammer) for _ in range(4)] + [pool.submit(revoke)]
        for future in futures:
            future.result()

    assert revoked_done
    assert all(status < 500 for _started, status, _code in results), results
    later = [(status, code) for started, status, code in results if started > revoked_done[0]]
    assert len(later) >= 40
    assert set(later) == {(401, "token_revoked")}
    assert any(status == 200 for _started, status, _code in results)
