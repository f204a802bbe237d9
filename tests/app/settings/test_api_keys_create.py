"""Organization API keys: AK-1, AK-2, AK-3, CS-2, and scenario F10 (revoke while in use).

This part: a key's format, the secret shown once and stored hashed, where a key is read from, and
the scopes a new key may get.
"""

import hashlib
import json

import pytest
import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.app.settings.api_keys import (
    BUILTIN_SCOPES,
    KEY_FORMAT,
    KEYS,
    MEMBERS,
    ORGANIZATION,
    assert_error,
)
from tests.app.settings.conftest import SETTINGS, key_header
from tests.conftest import auth_header


def secret_of(key):
    return KEY_FORMAT.match(key)[2]


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
