"""Passkeys around the rest of the account: the export lists them without key material
(AC-5), deleting the account deletes them, API keys cannot manage them (they act for an
organization, not a person), and the options tell the browser WEBAUTHN_CHALLENGE_TTL."""

from __future__ import annotations

import pytest

from authapp.models import Passkey, PasskeyChallenge
from tests.app.passkeys.conftest import (
    SETTINGS_PASSKEYS,
    Holder,
    assertion,
    count,
    passkey_login,
    refused,
    request_options,
)
from tests.conftest import PASSWORD


def test_the_export_lists_passkeys_without_key_material(app, holder: Holder):
    passkey = holder.register("Laptop")

    response = holder.client.get("/api/v1/settings/account/export", headers=holder.headers)

    assert response.status_code == 200, response.get_data(as_text=True)
    exported = response.json["passkeys"]
    assert [p["id"] for p in exported] == [passkey["id"]]
    assert set(exported[0]) == {"id", "name", "created_at", "last_used_at", "backed_up"}
    credential_id = next(iter(holder.authenticator.credentials))
    assert credential_id not in response.get_data(as_text=True)


def test_deleting_the_account_deletes_its_passkeys_and_challenges(app, client, holder: Holder):
    holder.register()
    holder.creation_options()  # a registration left pending

    response = client.delete(
        "/api/v1/settings/account", json={"password": PASSWORD}, headers=holder.headers
    )

    assert response.status_code == 204, response.get_data(as_text=True)
    assert count(app, Passkey) == 0
    assert count(app, PasskeyChallenge, PasskeyChallenge.user_id == holder.user["id"]) == 0
    refused(passkey_login(client, assertion(client, holder.authenticator)))


def test_an_api_key_cannot_manage_passkeys(client, holder: Holder, make_holder):
    """Passkeys are a person's: an organization's API key gets 403 on every passkey route."""
    owner = make_holder(email="owner@example.com", role_names=("owner",))
    key = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "ci", "scopes": ["users:read"]},
        headers=owner.headers,
    )
    assert key.status_code == 201, key.json
    headers = {"X-API-Key": key.json["key"]}

    for method, path, body in (
        ("GET", SETTINGS_PASSKEYS, None),
        ("POST", f"{SETTINGS_PASSKEYS}/options", {"password": PASSWORD}),
        ("POST", SETTINGS_PASSKEYS, {"credential": {}}),
    ):
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 403, (method, path, response.json)


@pytest.mark.config(WEBAUTHN_CHALLENGE_TTL=60)
def test_the_options_timeout_is_the_challenge_ttl(client, holder: Holder):
    """The browser gives up when the challenge would: both options say 60 s."""
    creation = holder.creation_options().json["publicKey"]

    assert creation["timeout"] == 60_000
    assert request_options(client)["timeout"] == 60_000


def test_a_name_of_spaces_is_refused_on_rename(holder: Holder):
    passkey = holder.register("Kept")

    response = holder.client.patch(
        f"{SETTINGS_PASSKEYS}/{passkey['id']}", json={"name": "   "}, headers=holder.headers
    )

    assert response.status_code == 422, response.json
    assert [p["name"] for p in holder.listed()] == ["Kept"]
