"""Organization API keys: AK-1, AK-2, AK-3, CS-2, and scenario F10 (revoke while in use)."""

import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.conftest import auth_header
from tests.settings.conftest import BUILTIN_PERMISSIONS, SETTINGS, key_header

KEYS = f"{SETTINGS}/api-keys"
ORGANIZATION = f"{SETTINGS}/organization"
MEMBERS = f"{SETTINGS}/members"
KEY_FORMAT = re.compile(r"\Aak_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")
BUILTIN_SCOPES = list(BUILTIN_PERMISSIONS)


def secret_of(key):
    return KEY_FORMAT.match(key)[2]


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


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"]["code"] == code


def test_a_new_key_has_the_documented_format_and_a_long_secret(client, tenants, make_api_key):
    """AK-1, CS-2: `ak_<12 hex>_<43 url-safe chars>`, i.e. 256 bits of secret (≥128)."""
    first = make_api_key(tenants["acme"], ["users:read"], name="ci")
    second = make_api_key(tenants["acme"], ["users:read"])

    match = KEY_FORMAT.match(first["key"])
    assert match, first["key"]
    assert match[1] == first["prefix"]
    assert len(match[2]) * 6 >= 128
    assert secret_of(first["key"]) != secret_of(second["key"])
    assert first["prefix"] != second["prefix"]
    assert first["name"] == "ci"
    assert first["scopes"] == ["users:read"]
    assert first["created_by"] == tenants["acme"]["owner"].id
    assert first["last_used_at"] is None
    assert first["expires_at"] is None
    assert first["revoked_at"] is None


def test_the_key_is_shown_only_in_the_answer_that_creates_it(client, tenants, make_api_key):
    """AK-1, AC-5: never listed, never in the audit log."""
    acme = tenants["acme"]
    created = make_api_key(acme, ["users:read"])
    secret = secret_of(created["key"])

    listing = client.get(KEYS, headers=acme["owner"].headers)
    audit = client.get(f"{SETTINGS}/audit-events?limit=100", headers=acme["owner"].headers)

    assert listing.status_code == 200
    assert [item["id"] for item in listing.json["api_keys"]] == [created["id"]]
    assert set(listing.json["api_keys"][0]) == {
        "id",
        "name",
        "prefix",
        "scopes",
        "created_by",
        "acts_for",
        "made_by_key",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "status",
        "effective_scopes",
    }
    assert audit.status_code == 200
    for body in (listing.get_data(as_text=True), audit.get_data(as_text=True)):
        assert secret not in body
        assert created["key"] not in body


def test_the_table_holds_only_the_sha256_of_the_key(app, tenants, make_api_key):
    """AK-1, CS-2: no column holds the key or its secret."""
    created = make_api_key(tenants["acme"], ["users:read"])
    key, secret = created["key"], secret_of(created["key"])

    with app.app_context():
        rows = db.session.execute(sa.text("SELECT * FROM api_keys")).mappings().all()

    assert len(rows) == 1
    row = rows[0]
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == created["prefix"]
    for column, value in row.items():
        assert secret not in json.dumps(value, default=str), column


def test_the_key_works_from_the_x_api_key_header(client, tenants, make_api_key):
    """AK-3."""
    key = make_api_key(tenants["acme"], [])["key"]

    response = client.get(ORGANIZATION, headers=key_header(key))

    assert response.status_code == 200
    assert response.json["id"] == tenants["acme"].id


def test_the_key_as_a_bearer_token_is_401(client, tenants, make_api_key):
    """AK-3: only the X-API-Key header carries a key."""
    key = make_api_key(tenants["acme"], ["users:read"])["key"]

    response = client.get(MEMBERS, headers=auth_header(key))

    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("parameter", ["api_key", "key", "X-API-Key", "access_token"])
def test_the_key_in_the_query_string_is_401(client, tenants, make_api_key, parameter):
    """AK-3, REST Security CS: secrets never travel in URLs."""
    key = make_api_key(tenants["acme"], ["users:read"])["key"]

    response = client.get(MEMBERS, query_string={parameter: key})

    assert_error(response, 401, "missing_token")


def test_a_key_acts_with_its_scopes_only(client, tenants, make_api_key):
    """AK-3, AC-1."""
    acme = tenants["acme"]
    headers = key_header(make_api_key(acme, ["users:read"])["key"])

    assert client.get(MEMBERS, headers=headers).status_code == 200
    assert client.get(f"{SETTINGS}/roles", headers=headers).status_code == 200
    assert_error(client.get(f"{SETTINGS}/audit-events", headers=headers), 403, "forbidden")
    assert_error(client.get(KEYS, headers=headers), 403, "forbidden")
    renamed = client.patch(ORGANIZATION, json={"name": "Hijacked"}, headers=headers)
    assert_error(renamed, 403, "forbidden")
    assert client.get(ORGANIZATION, headers=headers).json["name"] == acme.name


def test_an_admin_can_create_a_key_with_every_builtin_scope(client, tenants):
    """AK-3: admin holds every permission."""
    response = client.post(
        KEYS,
        json={"name": "everything", "scopes": BUILTIN_SCOPES},
        headers=tenants["acme"]["admin"].headers,
    )

    assert response.status_code == 201, response.json
    assert sorted(response.json["scopes"]) == BUILTIN_SCOPES
    assert response.json["created_by"] == tenants["acme"]["admin"].id
    key = key_header(response.json["key"])
    assert client.get(f"{SETTINGS}/audit-events", headers=key).status_code == 200


def test_a_key_cannot_get_a_scope_its_creator_lacks(client, tenants, make_user, login):
    """AK-3, AC-3: scopes are a subset of the caller's permissions."""
    acme = tenants["acme"]
    role = client.post(
        f"{SETTINGS}/roles",
        json={"name": "keymaster", "permissions": ["api_keys:manage", "users:read"]},
        headers=acme["owner"].headers,
    )
    assert role.status_code == 201, role.json
    keymaster = make_user(
        email="keys@acme.example", organization=acme.id, role_names=("keymaster",)
    )
    headers = auth_header(login(keymaster)["access_token"])

    escalate = client.post(KEYS, json={"name": "x", "scopes": ["org:manage"]}, headers=headers)
    mixed = client.post(
        KEYS, json={"name": "x", "scopes": ["users:read", "org:manage"]}, headers=headers
    )
    allowed = client.post(KEYS, json={"name": "x", "scopes": ["users:read"]}, headers=headers)

    assert_error(escalate, 403, "forbidden")
    assert_error(mixed, 403, "forbidden")
    assert allowed.status_code == 201, allowed.json
    listed = client.get(KEYS, headers=headers).json["api_keys"]
    assert [item["scopes"] for item in listed] == [["users:read"]]


def test_an_unknown_scope_is_422_on_scopes(client, tenants):
    response = client.post(
        KEYS,
        json={"name": "x", "scopes": ["users:read", "commodities:write"]},
        headers=tenants["acme"]["owner"].headers,
    )

    assert_error(response, 422, "validation_error")
    assert "scopes" in response.json["error"]["fields"]
    assert client.get(KEYS, headers=tenants["acme"]["owner"].headers).json["api_keys"] == []


@pytest.mark.parametrize("days", [0, 3651, "7", 1.5, -1, True])
def test_a_bad_expiry_is_422(client, tenants, days):
    response = client.post(
        KEYS,
        json={"name": "x", "scopes": [], "expires_in_days": days},
        headers=tenants["acme"]["owner"].headers,
    )

    assert_error(response, 422, "validation_error")
    assert "expires_in_days" in response.json["error"]["fields"]


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
